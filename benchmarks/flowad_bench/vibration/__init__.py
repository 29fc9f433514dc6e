"""A real domain-shift benchmark on vibration: FEMTO / PRONOSTIA bearings under three conditions.

Protocol (the data README's): **leave one operating condition out**. The source is the healthy
snapshots (life fraction 0.05–0.5) of the two other conditions, with the condition as domain.
For each seed, the target's healthy snapshots are shuffled; the first N ∈ {10, 30, 100} are the
adaptation data (nested: the 10 are among the 30, ...); the test set is the target's *other*
healthy snapshots (label 0) and all its late-life snapshots (0.85–0.97, label 1). Models are
trained once per (target, seed) on the source and then adapted with each N.

Methods (anomaly score higher = more anomalous):

* ``nf_unadapted`` – :class:`~flowad.detectors.BatchNormFlow` trained on the pooled source, no
  adaptation;
* ``autoencoder`` – :class:`~flowad_bench.baselines.AutoEncoderBaseline` on the pooled source, no
  adaptation;
* ``adaflow`` – :class:`~flowad.detectors.AdaFlow` trained with the source conditions as domains, adapted
  to the target with ``adapt`` on the N snapshots (forward passes only);
* ``nf_finetuned`` – the ``nf_unadapted`` flow fine-tuned on the N snapshots (``BatchNormFlow``
  with ``finetune_epochs > 0``; its batch-norm statistics are then recomputed on them);
* the README's simple baselines: ``gauss_pooled`` (Ledoit–Wolf Gaussian on the pooled source,
  globally standardized, Mahalanobis distance), ``gauss_domain_std`` (the same on per-domain
  standardized features: each source condition with its own mean and standard deviation, the
  target with those of its N snapshots), ``gauss_target_only`` (Ledoit–Wolf Gaussian fitted on
  the N target snapshots only, standardized with their statistics), ``iforest_pooled`` and
  ``iforest_domain_std`` (scikit-learn IsolationForest, 100 trees, on the same two inputs), and
  ``log_rms`` (sum of the two axes' log RMS, no training).

Metrics per target: AUROC; pAUC at max FPR 0.1 computed as in the DCASE Task 2 baselines, with
``sklearn.metrics.roc_auc_score(max_fpr=0.1)``, which returns the **McClish-standardized**
partial AUC (0.5 = chance, 1 = perfect); for the flows the mean NLL (nats per snapshot, input
space) of the target's test healthy snapshots; the wall time of ``AdaFlow.adapt`` and of the
fine-tuning ``BatchNormFlow.adapt`` on one thread.

**Drift-only control.** The README's control (healthy vs mid-life 0.55–0.70) needs snapshots
that are not in the data folder (it holds only the 0.05–0.5 and 0.85–0.97 windows). The
control here is a proxy inside the healthy window: adaptation pool and test normals from life
fraction [0.05, 0.30), "drift" positives from [0.40, 0.50) of the same target; the source
models are the same. It measures how much AUROC slow drift alone gives; its numbers are not
comparable with the README's control. Run for AdaFlow, the unadapted models and the simple
baselines (not for fine-tuning).

The package holds three modules: :mod:`~flowad_bench.vibration.data` (features, life windows,
splits), :mod:`~flowad_bench.vibration.task` (the experiment, the resumable run and the
source-only check of the AdaFlow setting) and :mod:`~flowad_bench.vibration.report` (the
markdown report); names, windows and settings are in :mod:`~flowad_bench.vibration.config`.
"""

from flowad_bench.shift import summarize
from flowad_bench.vibration.config import (
    CONDITIONS,
    DRIFT_NORMAL,
    DRIFT_POSITIVE,
    FLOWS,
    HEALTHY,
    LATE_LIFE,
    METHODS,
    SIMPLE_BASELINES,
    VALIDATION_CANDIDATES,
    VibrationBenchConfig,
)
from flowad_bench.vibration.data import Split, load_features, splits, window
from flowad_bench.vibration.report import (
    caveats,
    published_baselines,
    validation_markdown,
    vibration_markdown,
)
from flowad_bench.vibration.task import run_vibration_benchmark, run_vibration_task, source_validation

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
    "Split",
    "VibrationBenchConfig",
    "caveats",
    "load_features",
    "published_baselines",
    "run_vibration_benchmark",
    "run_vibration_task",
    "source_validation",
    "splits",
    "summarize",
    "validation_markdown",
    "vibration_markdown",
    "window",
]
