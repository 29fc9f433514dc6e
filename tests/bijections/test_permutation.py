"""Permutation: the reversal's fast path (a flip) is the same map as the general gather."""

from __future__ import annotations

import torch

from flowad.bijections import Permutation


def test_reversal_flips_exactly_like_the_gather():
    x = torch.randn(7, 5, dtype=torch.float64)
    rev = Permutation.reverse(5)
    assert rev.is_reversal
    torch.testing.assert_close(rev(x)[0], x[:, [4, 3, 2, 1, 0]], atol=0, rtol=0)
    torch.testing.assert_close(rev.inverse(rev(x)[0])[0], x, atol=0, rtol=0)


def test_loading_a_state_dict_updates_the_fast_path():
    rev, other = Permutation.reverse(4), Permutation(torch.tensor([1, 0, 3, 2]))
    assert not other.is_reversal
    other.load_state_dict(rev.state_dict())
    assert other.is_reversal
    x = torch.randn(3, 4)
    torch.testing.assert_close(other(x)[0], x.flip(1), atol=0, rtol=0)
    rev.load_state_dict(Permutation(torch.tensor([1, 0, 3, 2])).state_dict())
    assert not rev.is_reversal
    torch.testing.assert_close(rev(x)[0], x[:, [1, 0, 3, 2]], atol=0, rtol=0)
