"""Names, life windows and settings of the FEMTO / PRONOSTIA benchmark (see :mod:`flowad_bench.vibration`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "CONDITIONS",
    "DRIFT_NORMAL",
    "DRIFT_POSITIVE",
    "FLOWS",
    "HEALTHY",
    "LATE_LIFE",
    "METHODS",
    "SIMPLE_BASELINES",
    "VALIDATION_CANDIDATES",
    "VibrationBenchConfig",
]

#: Operating conditions (the domains) of the FEMTO / PRONOSTIA data.
CONDITIONS = ("C1", "C2", "C3")
#: Methods, in table order.
METHODS = (
    "nf_unadapted",
    "autoencoder",
    "adaflow",
    "adaflow_mixture",
    "adaflow_mixture_latent",
    "adaflow_mixture_likelihood",
    "nf_finetuned",
    "gauss_pooled",
    "gauss_domain_std",
    "gauss_target_only",
    "knn_target_only",
    "iforest_pooled",
    "iforest_domain_std",
    "log_rms",
)
#: Methods with an NLL ("adaflow": the flow alone, the published AdaFlow; "adaflow_mixture": the
#: library's default adapted detector, the same trained flow mixed with each domain's Gaussian;
#: "adaflow_mixture_latent": the same with the Gaussian on the flow's latent, gaussian_space="latent";
#: "adaflow_mixture_likelihood": the same with the weight of best held-out likelihood,
#: mixture_selection="likelihood", the default before issue 13's second round).
FLOWS = ("nf_unadapted", "adaflow", "adaflow_mixture", "adaflow_mixture_latent", "adaflow_mixture_likelihood", "nf_finetuned")
#: The simple baselines (the data README's, and the target-only 1-NN distance).
SIMPLE_BASELINES = METHODS[METHODS.index("gauss_pooled"):]
#: Healthy window of the data (life fraction), and the late-life window.
HEALTHY = (0.05, 0.5)
LATE_LIFE = (0.85, 0.97)
#: Proxy drift-only control: normals (and adaptation pool) and "drift" positives, both inside
#: the healthy window (the README's mid-life window 0.55-0.70 is not in the data folder).
DRIFT_NORMAL = (0.05, 0.30)
DRIFT_POSITIVE = (0.40, 0.50)

#: AdaFlow settings compared by :func:`~flowad_bench.vibration.task.source_validation` (the first
#: is the a-priori choice).
VALIDATION_CANDIDATES: tuple[dict[str, Any], ...] = (
    {"n_layers": 2},
    {"n_layers": 3},
    {"n_layers": 4},
    {"n_layers": 2, "n_couplings": 1, "hidden": (64,)},
)


@dataclass(frozen=True)
class VibrationBenchConfig:
    """Settings of :func:`~flowad_bench.vibration.task.run_vibration_benchmark`.

    The flow settings were fixed before any run, without looking at test labels: the
    library's AdaFlow architecture (the published one: LU-linear -> AdaBN -> leaky ReLU
    (0.1) -> LU-linear -> AdaBN, no couplings, about 10 k weights for 70 features, the size
    that about 600 source snapshots support), 200 epochs of Adam (lr 1e-3, batch 128); the
    same architecture and training for the batch-norm flow and the autoencoder; fine-tuning
    50 epochs, batch 32, lr 1e-4 (the library default learning rate of fine-tuning).
    """

    n_adapt: tuple[int, ...] = (10, 30, 50, 100)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    targets: tuple[str, ...] = CONDITIONS
    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    finetune_epochs: int = 50
    finetune_batch_size: int = 32
    finetune_lr: float = 1e-4
    iforest_trees: int = 100
    drift_control: bool = True
    quick: bool = False
