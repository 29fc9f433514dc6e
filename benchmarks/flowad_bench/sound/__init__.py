"""The AdaFlow study's sound benchmark, rebuilt semi-synthetically from the real clips available.

**Semi-synthetic.** Normal sound is real machine sound mixed with a background; anomalies are
made by mixing real office events into it. No recording here holds a real machine fault
under a real change of environment: every result of this module is labelled
"semi-synthetic".

How the data are made (the study: 4 toy-car types × 4 factory noises at 0 dB SNR, 9
pre-training domains from 3 × 3, target = the remaining car with the remaining noise; DCASE
2016 office events added at an anomaly-to-normal ratio of −20 dB):

* **Machines** (the study's car types): the normal clips of four machine types of the DCASE
  2023 Task 2 clips, :data:`MACHINES` = ToyCar, ToyTrain, fan, gearbox (real recordings,
  16 kHz; at most ``max_clips`` normal clips per type).
* **Noise environments** (the study's factory noises), :data:`NOISES`: three are real
  recordings of other machines of the same folder — ``bearing``, ``slider`` and ``valve``
  normal clips, a running neighbour machine as background, with the factory background the
  recordings already hold — and one is generated, ``hvac`` (no recording of it exists here): a
  ventilation-like background of pink noise (1/f power spectrum), low-passed brown noise and a
  50 Hz mains hum with its 100 and 150 Hz harmonics, all slowly amplitude-modulated
  (0.1–0.3 Hz), see :func:`hvac_noise`.
* **Domain** ``<machine>+<noise>``: each machine clip mixed with its noise at ``snr_db``
  (default 0 dB, :func:`~flowad_bench.mixing.mix_at_snr`) from a random offset in that
  noise. Every clip (machine and noise alike) is cut in time: its first ``train_fraction``
  (0.6) gives training / adaptation audio, the rest test audio, so no test waveform (of the
  machine *or* of the noise) is heard in training.
* **Rotation** ``r`` (a target): target domain = ``MACHINES[r] + NOISES[r]``; the 3 × 3
  pre-training (source) domains are the other machines with the other noises, as in the
  study. ``targets`` picks the rotations (default all four).
* **Test set** of a target: its test audio cut into segments of ``segment_seconds`` (0.5 s)
  every ``segment_hop_seconds`` (0.25 s); each segment appears once as normal (label 0) and
  once with a real office event added at a random position (label 1), at an anomaly-to-normal
  ratio (:func:`~flowad_bench.mixing.add_at_anr`: the event's power over the span it covers
  is ``-anr_db`` dB below the normal sound's over that span). Events are drawn at random from
  the study's classes :data:`EVENT_CLASSES` (door slams, knocks, keys, keystrokes, drawers,
  page turns, phones; resampled from 44.1 to 16 kHz) and cut to the segment's length.
* **Experiments**: one per ratio in ``anr_db`` (default −20 dB, the study's, and −10 dB), named
  ``anr-20dB``, ``anr-10dB``; they share the models, the adaptation frames, the segments and
  the event draws (same event at the same position), only the event's level differs.

The segment length (0.5 s) and the second ratio (−10 dB) were set after pilot runs at −20 dB
(test labels looked at) in which every method stayed near chance; they apply to every method
alike.

Features: the library's log-mel context windows (:class:`~flowad.features.audio.AudioFeatureConfig`
defaults: 16 kHz, FFT 512, hop 256, 64 mels, ±5 frames = 704 dimensions). A segment's anomaly
score is the **mean of its frames' scores** (the DCASE convention and
:class:`~flowad.pipelines.sound.SoundDetector`'s default, fixed before any run).

Methods (score higher = more anomalous):

* ``nf_unadapted`` – :class:`~flowad.detectors.BatchNormFlow` trained on the pooled source
  frames, no adaptation (the study's "NF trained on the 9 other domains");
* ``autoencoder`` – :class:`~flowad_bench.baselines.AutoEncoderBaseline` on the pooled source
  frames (mean squared reconstruction error);
* ``audio_ae`` – PyOD's :class:`pyod.models.audio_ae.AudioAE` with its own defaults (its own
  log-mel features: 64 mels, 5 frames, hop 512) except ``sr=16000``, seeded, on the CPU; fitted
  on the source training clips, scoring the test segments (its per-clip mean window error);
* ``adaflow`` – :class:`~flowad.detectors.AdaFlow` trained with the 9 source domains, adapted to the
  target with ``adapt`` on N target training frames (forward passes only), scored by the flow
  alone (the published AdaFlow); ``adaflow_mixture`` – the same trained flow as the sound
  pipeline adapts it (``stationary_frames=11``, the default mixture: from 10 frames on, the
  target's Gaussian that knows the context window's frames); ``adaflow_mixture_unstructured`` –
  the same with ``AdaFlow()``'s generic defaults; ``adaflow_mixture_latent`` and
  ``adaflow_mixture_likelihood`` – the Gaussian on the flow's latent, the weight by held-out
  likelihood;
* ``nf_finetuned`` – the ``nf_unadapted`` flow fine-tuned on the same N frames;
* ``gauss_target`` – a simple baseline, the FEMTO data README's "Gaussian fitted on the N
  target samples only": the same N target frames standardize the features, a Ledoit–Wolf
  Gaussian fitted on them scores each frame by its squared Mahalanobis distance (no source
  data, no training). It tells how much of a result needs the source domains at all;
* ``gauss_target_stationary`` – the same N frames, the library's Gaussian that knows the
  context window's 11 frames (:func:`flowad.flows.moments.stationary_covariance`: mean shrunk
  toward the frame-position mean, covariance toward block-Toeplitz; no source data, no flow):
  what the sound pipeline's adapted detector scores with from 10 frames on, without AdaFlow.

N target frames (``n_adapt``, default 10 / 100 / 1000, the study's) are drawn at random from
the target's training audio (nested: the 10 are among the 100, ...). The unadapted models do
not depend on N; their rows are repeated for each N so the tables line up.

Metrics: AUROC and pAUC (max FPR 0.1, McClish-standardized, as the DCASE baselines compute it)
over the test segments; for the flows, the NLL (nats per 704-dimensional frame, input space) of
the target's normal test frames; the wall time of ``AdaFlow.adapt`` and of fine-tuning on one
thread.

The package holds three modules: :mod:`~flowad_bench.sound.data` (recordings, generated noise,
domains, labelled test segments), :mod:`~flowad_bench.sound.task` (the experiment and the
resumable run) and :mod:`~flowad_bench.sound.report` (the markdown report); names and settings
are in :mod:`~flowad_bench.sound.config`.
"""

from flowad_bench.sound.config import (
    EVENT_CLASSES,
    FLOWS,
    GENERATED_NOISES,
    MACHINES,
    METHODS,
    NOISES,
    SoundBenchConfig,
    experiment_name,
)
from flowad_bench.sound.data import (
    LabelledSegments,
    SoundMaterial,
    build_test_set,
    domain_audio,
    frames_of,
    hvac_noise,
    load_material,
)
from flowad_bench.sound.report import published_results, sound_markdown
from flowad_bench.sound.task import run_sound_benchmark, run_sound_task

__all__ = [
    "EVENT_CLASSES",
    "FLOWS",
    "GENERATED_NOISES",
    "MACHINES",
    "METHODS",
    "NOISES",
    "LabelledSegments",
    "SoundBenchConfig",
    "SoundMaterial",
    "build_test_set",
    "domain_audio",
    "experiment_name",
    "frames_of",
    "hvac_noise",
    "load_material",
    "published_results",
    "run_sound_benchmark",
    "run_sound_task",
    "sound_markdown",
]
