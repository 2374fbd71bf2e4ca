"""Adversarial-robustness benchmark for latent generative image models."""

__version__ = "0.1.0"
