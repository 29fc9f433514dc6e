"""The trimmed loss of Robust RealNVP on the *global* minibatch, and buffer synchronisation.

Each rank holds a local batch; together they form the global batch of a step. Trimming per rank
would keep the ``n_kept(local)`` best samples of every rank, which is not what a single process
with the global batch does (a rank that happens to hold many anomalies would keep some of them).
So the detached per-sample losses of all ranks are gathered, the ``n_kept(global, eps)`` smallest
are chosen on the gathered vector (ties broken by ``(value, rank, position)``), and rank ``r``'s
loss is

    world_size * sum(NLL of rank r's kept samples) / n_kept(global, eps)

DistributedDataParallel averages gradients over the ranks, so the gradient every rank applies is
``sum(grad NLL of all kept samples) / n_kept``: exactly the gradient of the single-process
trimmed mean of the global batch.

The spectral-norm vectors travel in the same collective: after each forward pass (which runs
one power-iteration step on every rank), every rank takes rank 0's vectors, so all ranks start
the next step from the same state (see ``carry``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import Tensor, nn

from flowad.bijections.adabn import MIN_BATCH_COUNT, AdaptiveBatchNorm
from flowad.training.loop import n_kept

__all__ = ["SyncedAdaptiveBatchNorm", "global_trimmed_loss", "flat_buffers", "set_buffers", "spectral_buffers"]


#: One all-gather into one tensor (named all_gather_into_tensor before torch 2.13).
_all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


def global_trimmed_loss(
    nll: Tensor, trim_ratio: float, *, sizes: Sequence[int] | None = None, carry: Tensor | None = None
) -> tuple[Tensor, float, list[Tensor]]:
    """This rank's share of the global trimmed mean of ``nll`` (see the module docstring).

    Parameters
    ----------
    nll : Tensor of shape (local_batch,)
        Per-sample losses of this rank's batch (with their graph).
    trim_ratio : float
        Fraction of the *global* batch left out.
    sizes : sequence of int, optional
        Every rank's local batch size, when known (saves one collective); gathered otherwise.
    carry : Tensor, optional
        A 1-D tensor (same dtype and length on every rank) sent along in the same collective;
        every rank receives all ranks' ``carry`` (rank 0's spectral-norm vectors, say).

    Returns
    -------
    loss : Tensor
        Scalar to call ``backward`` on (DDP averages its gradient over the ranks).
    value : float
        The global trimmed mean itself (the same float on every rank).
    carried : list of Tensor
        Every rank's ``carry``, in rank order (empty without ``carry``).
    """
    world = dist.get_world_size()
    rank = dist.get_rank()
    local = nll.detach()
    if sizes is None:
        size_list = [torch.zeros(1, dtype=torch.long, device=local.device) for _ in range(world)]
        dist.all_gather(size_list, torch.tensor([local.shape[0]], dtype=torch.long, device=local.device))
        sizes = [int(t) for t in torch.cat(size_list).cpu()]
    sizes = [int(n) for n in sizes]
    biggest = max(sizes)
    extra = 0 if carry is None else carry.numel()
    if world == 1:
        values = local
        carried = [] if carry is None else [carry.detach()]
    else:
        mine = torch.full((biggest + extra,), float("inf"), dtype=local.dtype, device=local.device)
        mine[: local.shape[0]] = local
        if carry is not None:
            mine[biggest:] = carry.detach().to(local.dtype)
        out = torch.empty(world * (biggest + extra), dtype=local.dtype, device=local.device)
        _all_gather_single(out, mine)
        rows = out.view(world, biggest + extra)
        values = torch.cat([rows[r, : sizes[r]] for r in range(world)])
        carried = [] if carry is None else [rows[r, biggest:] for r in range(world)]
    total = values.shape[0]
    keep_n = n_kept(total, trim_ratio) if trim_ratio > 0 else total
    # Stable sort on the concatenation (rank-major): ties go to the lower (rank, position).
    order = torch.sort(values, stable=True).indices[:keep_n]
    kept = torch.zeros(total, dtype=torch.bool, device=values.device)
    kept[order] = True
    offset = sum(sizes[:rank])
    value = float(values[kept].sum() / keep_n)
    loss = nll[kept[offset : offset + local.shape[0]]].sum() * (world / keep_n)
    return loss, value, carried


def spectral_buffers(module: nn.Module, dtype: torch.dtype) -> list[tuple[nn.Module, str]]:
    """The floating buffers of ``module`` of ``dtype`` that change during training (the
    spectral-norm vectors ``_u`` and ``_v``), as ``(owner, name)`` pairs in a fixed order."""
    return [(m, name) for m in module.modules() for name, b in m._buffers.items()
            if b is not None and b.dtype == dtype and name in ("_u", "_v")]


def flat_buffers(slots: list[tuple[nn.Module, str]]) -> Tensor | None:
    """The buffers of ``slots`` concatenated into one 1-D tensor (None if there are none)."""
    if not slots:
        return None
    return torch.cat([m._buffers[name].detach().reshape(-1) for m, name in slots])


def set_buffers(slots: list[tuple[nn.Module, str]], flat: Tensor) -> None:
    """Rebind the buffers of ``slots`` to the values in ``flat`` (new tensors: no in-place write,
    so a graph that saved the old vectors stays valid, as spectral normalization itself does)."""
    start = 0
    for m, name in slots:
        old = m._buffers[name]
        n = old.numel()
        m._buffers[name] = flat[start : start + n].view_as(old).to(old.dtype).clone()
        start += n



def _sum_over_ranks(t: Tensor) -> Tensor:
    """The sum of ``t`` over the ranks, differentiable (its gradient is summed over the ranks too)."""
    with warnings.catch_warnings():  # torch 2.13 deprecates it for a private successor; same semantics
        warnings.simplefilter("ignore", FutureWarning)
        return dist_nn.all_reduce(t)


class SyncedAdaptiveBatchNorm(AdaptiveBatchNorm):
    """AdaBN whose train-mode per-domain statistics are those of the *global* batch.

    Like ``torch.nn.SyncBatchNorm``, but per domain: the per-domain count and sum, then the sum of
    squared deviations from the global mean, are summed over the ranks with the differentiable
    ``torch.distributed.nn.functional.all_reduce`` (two collectives per layer and forward pass;
    two passes, as the one-process layer computes its variance), so gradients flow through the
    statistics to every rank's rows. A domain with fewer than ``MIN_BATCH_COUNT`` rows in the
    global batch uses its stored statistics. The stored statistics are not changed, so they stay
    identical on every rank. Training swaps the layers' class to this one and back.
    """

    def _batch_statistics(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        k = self.n_domains
        ctx = context if context is not None else torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        counts = torch.bincount(ctx, minlength=k).to(x.dtype).unsqueeze(1)
        total = _sum_over_ranks(torch.cat([counts, x.new_zeros(k, self.features).index_add(0, ctx, x)], dim=1))
        n = total[:, :1].clamp_min(1)
        mean = total[:, 1:] / n
        var = _sum_over_ranks(x.new_zeros(k, self.features).index_add(0, ctx, (x - mean[ctx]).square())) / n
        few = total[:, :1] < MIN_BATCH_COUNT
        return torch.where(few, self.running_mean, mean), torch.where(few, self.running_var, var)
