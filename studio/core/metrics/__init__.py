"""Sample-quality metrics, each a closed-form or plain-numpy computation on arrays (no Qt, no sampling):

- ``frechet_distance``: the Fréchet (2-Wasserstein) distance between Gaussians fitted to two feature sets;
- ``sliced_wasserstein``: the sliced 2-Wasserstein distance between two point sets;
- ``rms_distance``: the RMS Euclidean distance between paired samples (a solver's error against a reference);
- ``mixture_log_likelihood``: the mean log density of samples under a Gaussian mixture;
- ``class_share``: the share of samples a classifier assigns to the class they were asked for.

Each returns a ``Measured`` (the value and, where the metric has one, its standard error). What each measures,
what it needs and its noise are in docs/studies.md.
"""

from .distances import frechet_distance, frechet_from_moments, rms_distance, sliced_wasserstein
from .measured import Measured
from .scores import class_share, mixture_log_likelihood

__all__ = ["Measured", "class_share", "frechet_distance", "frechet_from_moments", "mixture_log_likelihood",
           "rms_distance", "sliced_wasserstein"]
