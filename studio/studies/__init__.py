"""Studies: measurements of the samplers themselves, each a command that writes its tables and figures.

``python -m studio.studies.solver_error``: every deterministic sampler's error against the converged
probability-flow solution, per model call, on an exact denoiser (docs/solver-error.md).

Nothing here imports Qt or needs a GPU.
"""
