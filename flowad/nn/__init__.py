"""Conditioner networks for coupling layers."""

from flowad.nn.mlp import ACTIVATIONS, MLP, apply_lipschitz_bound, refine_spectral_norms, spectral_norms

__all__ = ["ACTIVATIONS", "MLP", "apply_lipschitz_bound", "refine_spectral_norms", "spectral_norms"]
