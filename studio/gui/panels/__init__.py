"""The dockable side panels: model, sampler, seed, plots."""
