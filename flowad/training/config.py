"""Training configuration (built by the detectors from their hyper-parameters)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TRIM_SCOPES", "TrainConfig"]

#: Where the trimmed loss chooses the rows it leaves out (see :class:`TrainConfig`).
TRIM_SCOPES = ("batch", "epoch")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`flowad.training.fit_flow`.

    Attributes
    ----------
    epochs : int
        Passes over the training data.
    batch_size : int
        Minibatch size (the last, smaller batch of an epoch is kept).
    lr : float
        Adam learning rate.
    weight_decay : float
        Adam (L2) weight decay.
    trim_ratio : float
        Fraction ``eps`` of the training rows, those with the largest negative
        log-likelihood, left out of the loss (0 disables trimming).
    trim_scope : {"batch", "epoch"}
        Where the trimmed fraction is chosen: ``"batch"``, within each minibatch from the
        losses of that step (the published algorithm); ``"epoch"``, once per epoch over the
        whole training set from the densities of the current model (one extra forward pass,
        no gradient), then the epoch's minibatches are drawn from the rows kept. The two are
        the same when the training set fits in one minibatch, up to the rows being scored
        without dequantization or training noise in ``"epoch"``.
    grad_clip : float or None
        Maximum global gradient norm; ``None`` disables clipping.
    noise_std : float
        Standard deviation of Gaussian noise added to every training minibatch (in the
        units of the training data); 0 disables it. Smooths densities of data with
        discrete or duplicated values.
    patience : int
        With validation data, stop after this many epochs without a lower validation loss
        and restore the best epoch's weights.
    """

    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-5
    trim_ratio: float = 0.0
    trim_scope: str = "batch"
    grad_clip: float | None = 10.0
    noise_std: float = 0.0
    patience: int = 10

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}.")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {self.batch_size}.")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}.")
        if not self.noise_std >= 0.0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}.")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}.")
        if not 0.0 <= self.trim_ratio < 1.0:
            raise ValueError(f"trim_ratio must be in [0, 1), got {self.trim_ratio}.")
        if self.trim_scope not in TRIM_SCOPES:
            raise ValueError(f"trim_scope must be one of {TRIM_SCOPES}, got {self.trim_scope!r}.")
