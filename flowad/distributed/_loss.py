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
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from flowad.training.loop import n_kept

__all__ = ["global_trimmed_loss", "broadcast_buffers"]


def global_trimmed_loss(nll: Tensor, trim_ratio: float) -> tuple[Tensor, float]:
    """This rank's share of the global trimmed mean of ``nll`` (see the module docstring).

    Returns ``(loss, value)``: ``loss`` to call ``backward`` on (DDP averages its gradient over the
    ranks), and ``value``, the global trimmed mean itself (the same float on every rank).
    """
    world = dist.get_world_size()
    rank = dist.get_rank()
    local = nll.detach()
    sizes = torch.zeros(world, dtype=torch.long)
    size_list = [torch.zeros(1, dtype=torch.long, device=local.device) for _ in range(world)]
    dist.all_gather(size_list, torch.tensor([local.shape[0]], dtype=torch.long, device=local.device))
    sizes = torch.cat(size_list).cpu()
    biggest = int(sizes.max())
    padded = torch.full((biggest,), float("inf"), dtype=local.dtype, device=local.device)
    padded[: local.shape[0]] = local
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    values = torch.cat([g[: int(n)] for g, n in zip(gathered, sizes, strict=True)])
    total = values.shape[0]
    keep_n = n_kept(total, trim_ratio) if trim_ratio > 0 else total
    # Stable sort on the concatenation (rank-major): ties go to the lower (rank, position).
    order = torch.sort(values, stable=True).indices[:keep_n]
    kept = torch.zeros(total, dtype=torch.bool, device=values.device)
    kept[order] = True
    offset = int(sizes[:rank].sum())
    mine = kept[offset : offset + local.shape[0]]
    value = float(values[kept].sum() / keep_n)
    loss = nll[mine].sum() * (world / keep_n)
    return loss, value


def broadcast_buffers(module: nn.Module, src: int = 0) -> None:
    """Overwrite every buffer of ``module`` (spectral-norm vectors, batch-norm statistics) with
    rank ``src``'s values, in one collective.

    The module's *current* buffers are collected on each call: spectral normalization rebinds its
    power-iteration vectors to new tensors at every training step, so a list taken once (as
    DistributedDataParallel's own ``broadcast_buffers`` keeps) would go stale.
    """
    buffers = [b for b in module.buffers() if b.numel()]
    if not buffers:
        return
    flat = torch.cat([b.detach().reshape(-1).to(torch.float64) for b in buffers])
    dist.broadcast(flat, src)
    start = 0
    with torch.no_grad():
        for b in buffers:
            n = b.numel()
            b.copy_(flat[start : start + n].view_as(b).to(b.dtype))
            start += n
