"""Names and settings of the semi-synthetic sound benchmark (see :mod:`flowad_bench.sound`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from flowad.features.audio import AudioFeatureConfig

__all__ = [
    "EVENT_CLASSES",
    "FLOWS",
    "GENERATED_NOISES",
    "MACHINES",
    "METHODS",
    "NOISES",
    "SoundBenchConfig",
    "experiment_name",
]

#: Machine types whose normal clips are the normal sound (the study's car types).
MACHINES = ("ToyCar", "ToyTrain", "fan", "gearbox")
#: Noise environments: three real recordings of neighbour machines, one generated.
NOISES = ("bearing", "slider", "valve", "hvac")
#: Generated noise environments (no recording needed).
GENERATED_NOISES = ("hvac",)
#: DCASE 2016 office-event classes used as anomalies (the AdaFlow study's choice).
EVENT_CLASSES = ("doorslam", "knock", "keysDrop", "keyboard", "drawer", "pageturn", "phone")
#: Methods, in table order.
METHODS = ("nf_unadapted", "autoencoder", "audio_ae", "adaflow", "adaflow_mixture", "adaflow_mixture_unstructured",
           "adaflow_mixture_latent",
           "adaflow_mixture_likelihood", "nf_finetuned",
           "gauss_target", "gauss_target_stationary", "knn_target")
#: Methods with an NLL ("adaflow": the flow alone, the published AdaFlow; "adaflow_mixture": the
#: sound pipeline's default adapted detector, the same flow mixed with the target's Gaussian, which
#: uses the stationarity of the context window's frames (stationary_frames=11);
#: "adaflow_mixture_unstructured": the same without it, AdaFlow() with its generic defaults;
#: "adaflow_mixture_latent": the Gaussian on the flow's latent, gaussian_space="latent";
#: "adaflow_mixture_likelihood": the weight of best held-out likelihood, mixture_selection="likelihood").
FLOWS = ("nf_unadapted", "adaflow", "adaflow_mixture", "adaflow_mixture_unstructured", "adaflow_mixture_latent", "adaflow_mixture_likelihood", "nf_finetuned")


def experiment_name(anr_db: float) -> str:
    """The ``experiment`` column of the results for an anomaly-to-normal ratio: ``anr-20dB``."""
    return f"anr{anr_db:+g}dB"


@dataclass(frozen=True)
class SoundBenchConfig:
    """Settings of :func:`~flowad_bench.sound.task.run_sound_benchmark` (fixed before any run, no test label looked at).

    The flows use the library's AdaFlow architecture (the published one: LU-linear -> AdaBN ->
    leaky ReLU (0.1) -> LU-linear -> AdaBN) and its Adam settings (lr 1e-3, batch 256) for
    ``epochs`` = 30 epochs (about 1 200 steps over the ~10 000 source frames; 704-dimensional
    LU layers make an epoch cost about 3 s on one thread); the batch-norm flow and the
    autoencoder the same. Fine-tuning: 50 epochs, batch 32, lr 1e-4 (as in the vibration
    benchmark).
    """

    n_adapt: tuple[int, ...] = (10, 50, 100, 1000)
    seeds: tuple[int, ...] = (0, 1, 2)
    targets: tuple[int, ...] = (0, 1, 2, 3)
    snr_db: float = 0.0
    anr_db: tuple[float, ...] = (-20.0, -10.0)
    train_fraction: float = 0.6
    segment_seconds: float = 0.5
    segment_hop_seconds: float = 0.25
    max_clips: int = 4
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    finetune_epochs: int = 50
    finetune_batch_size: int = 32
    finetune_lr: float = 1e-4
    audio_ae: bool = True
    audio_ae_epochs: int | None = None
    features: AudioFeatureConfig = field(default_factory=AudioFeatureConfig)
    quick: bool = False

    def target_name(self, rotation: int) -> str:
        """``<machine>+<noise>`` of a rotation's target domain."""
        return f"{MACHINES[rotation]}+{NOISES[rotation]}"
