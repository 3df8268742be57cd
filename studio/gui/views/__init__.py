"""The centre's views: image grids, the focused sample, scatter plots of vector models, the timeline."""
