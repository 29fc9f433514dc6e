"""Maximum-likelihood training of flows, with the trimmed loss of Robust RealNVP."""

from flowad.training.config import TrainConfig
from flowad.training.loop import fit_flow, observe_epochs, trimmed_mean

__all__ = ["TrainConfig", "fit_flow", "observe_epochs", "trimmed_mean"]
