"""Fixed permutations of the feature axis (log|det| = 0)."""

from __future__ import annotations

import torch
from torch import Tensor

from flowad.bijections.base import Bijection

__all__ = ["Permutation"]


class Permutation(Bijection):
    r"""Reorder features: :math:`y = x_{\pi}`, :math:`\log|\det J| = 0`.

    Parameters
    ----------
    permutation : Tensor of shape (D,)
        A permutation of ``0..D-1``; stored as a buffer.
    """

    def __init__(self, permutation: Tensor) -> None:
        super().__init__()
        permutation = torch.as_tensor(permutation, dtype=torch.long)
        d = permutation.numel()
        if permutation.ndim != 1 or not torch.equal(torch.sort(permutation).values, torch.arange(d)):
            raise ValueError(f"permutation must be a permutation of 0..{d - 1}, got {permutation.tolist()}.")
        self.register_buffer("perm", permutation)
        self.register_buffer("inv_perm", torch.argsort(permutation))

    @classmethod
    def reverse(cls, features: int) -> Permutation:
        """The permutation ``D-1, ..., 0`` (alternates the halves of coupling layers)."""
        return cls(torch.arange(features - 1, -1, -1))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return y[:, self.inv_perm], y.new_zeros(y.shape[0])
