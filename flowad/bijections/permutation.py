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
        self._note_reversal()
        self.register_load_state_dict_post_hook(lambda module, _keys: module._note_reversal())

    def _note_reversal(self) -> None:
        # The reversal (what the flows use) runs as a flip: a strided copy, several times faster
        # than a gather on CPU in PyTorch and in onnxruntime (it exports as a Slice with step -1).
        d = self.perm.numel()
        self.is_reversal = bool(torch.equal(self.perm.cpu(), torch.arange(d - 1, -1, -1)))

    @classmethod
    def reverse(cls, features: int) -> Permutation:
        """The permutation ``D-1, ..., 0`` (alternates the halves of coupling layers)."""
        return cls(torch.arange(features - 1, -1, -1))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y = x.flip(1) if self.is_reversal else x[:, self.perm]
        return y, x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = y.flip(1) if self.is_reversal else y[:, self.inv_perm]
        return x, y.new_zeros(y.shape[0])
