"""Sampling Studio: look inside DDPM/DDIM diffusion sampling."""

__version__ = "0.1.0"
