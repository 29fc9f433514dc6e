"""The sound benchmark's experiment: every method × N for one target rotation and seed, and the resumable run."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flowad.exceptions import InputError
from flowad.flows.moments import CoMoments, ShrunkGaussian
from flowad_bench.methods import quiet_and_isolated
from flowad_bench.record import output_folder
from flowad_bench.shift import (
    check_grid,
    fit_source_models,
    flow_only,
    knn_target_scores,
    result_row,
    run_resumable,
    target_gaussian_scores,
)
from flowad_bench.sound.config import MACHINES, NOISES, SoundBenchConfig, experiment_name
from flowad_bench.sound.data import (
    LabelledSegments,
    SoundMaterial,
    build_test_set,
    domain_audio,
    frames_of,
    load_material,
)

__all__ = ["run_sound_benchmark", "run_sound_task"]

nan = float("nan")


def _segment_means(frame_scores: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(owner, weights=frame_scores, minlength=n) / np.bincount(owner, minlength=n)


def _score(test: LabelledSegments, frame_scores: np.ndarray) -> tuple[np.ndarray, float]:
    """Segment scores (mean over frames) and the mean frame score of the normal segments."""
    normal = test.y[test.owner] == 0
    return _segment_means(frame_scores, test.owner, len(test.y)), float(frame_scores[normal].mean())


def _audio_ae(train_waves: Sequence[np.ndarray], sr: int, seed: int, config: SoundBenchConfig) -> Any:
    """PyOD's AudioAE fitted on the source clips, seeded, without leaking global RNG changes."""
    from pyod.models.audio_ae import AudioAE

    kwargs: dict[str, Any] = {"sr": sr, "random_state": seed, "device": "cpu", "verbose": 0}
    if config.audio_ae_epochs is not None:
        kwargs["epoch_num"] = config.audio_ae_epochs
    with quiet_and_isolated(seed):
        return AudioAE(**kwargs).fit([(w, sr) for w in train_waves])


def run_sound_task(material: SoundMaterial, rotation: int, seed: int, config: SoundBenchConfig) -> list[dict[str, Any]]:
    """Every method × N for one target rotation and one seed.

    Returns
    -------
    list of dict
        One row per (experiment, N, method), with the fields of
        :data:`~flowad_bench.shift.RESULT_FIELDS`.
    """
    feats = config.features
    target_machine, target_noise = MACHINES[rotation], NOISES[rotation]
    target = config.target_name(rotation)
    source_waves: list[np.ndarray] = []
    blocks, labels = [], []
    for m in MACHINES:
        for nz in NOISES:
            if m == target_machine or nz == target_noise:
                continue
            waves = domain_audio(material, m, nz, "train", seed, config)
            source_waves += waves
            f = np.concatenate([frames_of(w, feats) for w in waves])
            blocks.append(f)
            labels += [f"{m}+{nz}"] * len(f)
    Xs, ds = np.concatenate(blocks), np.asarray(labels)
    pool = np.concatenate([frames_of(w, feats) for w in domain_audio(material, target_machine, target_noise, "train", seed, config)])
    order = np.random.default_rng([seed, rotation, 3]).permutation(len(pool))
    test_waves = domain_audio(material, target_machine, target_noise, "test", seed, config)
    tests = {experiment_name(a): build_test_set(material, test_waves, seed, rotation, a, config) for a in config.anr_db}

    ada, bn, ae = fit_source_models(Xs, ds, config, seed)
    frames = feats.frames
    variants = {  # the same trained flow: the default mixture, the flow alone (published AdaFlow), the latent Gaussian
        "adaflow": flow_only(ada),
        # the sound pipeline's default (SoundDetector): the Gaussian knows the context window's frames
        "adaflow_mixture": flow_only(ada, adapted_density="mixture", stationary_frames=frames),
        "adaflow_mixture_unstructured": ada,  # AdaFlow() as is: no frame structure
        "adaflow_mixture_latent": flow_only(ada, adapted_density="mixture", gaussian_space="latent"),
        "adaflow_mixture_likelihood": flow_only(ada, adapted_density="mixture", mixture_selection="likelihood"),
    }
    audio_ae = _audio_ae(source_waves, material.sample_rate, seed, config) if config.audio_ae else None
    pooled = str(ds[0])  # a training domain: the pooled (unadapted) flow scores it

    # Models that do not depend on N: scored once, their rows repeated for every N.
    fixed: dict[str, dict[str, tuple[np.ndarray, float]]] = {}
    for experiment, test in tests.items():
        fixed[experiment] = {
            "nf_unadapted": _score(test, -bn.score_samples(test.frames, domain=pooled)),
            "autoencoder": (_score(test, ae.decision_function(test.frames))[0], nan),
        }
        if audio_ae is not None:
            with quiet_and_isolated(seed):  # its DataLoader draws from torch's global generator
                aae = audio_ae.decision_function([(w, material.sample_rate) for w in test.waves])
            fixed[experiment]["audio_ae"] = (np.asarray(aae, dtype=float), nan)

    rows: list[dict[str, Any]] = []
    for n in config.n_adapt:
        if n > len(pool):
            raise InputError(f"N={n} adaptation frames asked, but target {target} has only {len(pool)} training frames.")
        Xa = pool[np.sort(order[:n])]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "few rows" warnings at N = 10 are expected here
            ada_seconds = {}
            for method, model in variants.items():
                t0 = time.perf_counter()
                model.adapt(Xa, domain=target)
                ada_seconds[method] = time.perf_counter() - t0
            name = f"{target}-N{n}"
            t0 = time.perf_counter()
            bn.adapt(Xa, domain=name)
            ft_seconds = time.perf_counter() - t0
            for experiment, test in tests.items():
                entries = [(method, scores, nll, nan) for method, (scores, nll) in fixed[experiment].items()]
                for method, model in variants.items():
                    entries.append((method, *_score(test, -model.score_samples(test.frames, domain=target)), ada_seconds[method]))
                entries.append(("nf_finetuned", *_score(test, -bn.score_samples(test.frames, domain=name)), ft_seconds))
                entries.append(("gauss_target", _score(test, target_gaussian_scores(Xa, test.frames))[0], nan, nan))
                # the same N frames, the library's Gaussian with the frame structure (no source data, no flow)
                framed = ShrunkGaussian.fit(CoMoments.of(Xa), frames=frames)
                entries.append(("gauss_target_stationary", _score(test, -framed.log_prob(test.frames))[0], nan, nan))
                entries.append(("knn_target", _score(test, knn_target_scores(Xa, test.frames))[0], nan, nan))
                rows += [result_row(experiment, target, seed, n, m, test.y, sc, nll, sec) for m, sc, nll, sec in entries]
            bn.remove_domain(name)
    return rows


def run_sound_benchmark(clips: str | Path, events: str | Path, out: str | Path, config: SoundBenchConfig | None = None,
                        *, progress: bool = True) -> pd.DataFrame:
    """Run every (target rotation, seed) task on one thread; write ``out/results.csv`` as it goes.

    Also writes ``out/material.json`` (clips and events used). Resumable: tasks whose rows are
    already in ``out/results.csv`` are skipped.

    Returns
    -------
    DataFrame
        All result rows.
    """
    cfg = config or SoundBenchConfig()
    check_grid(cfg)
    bad = [t for t in cfg.targets if not 0 <= t < len(MACHINES)]
    if bad:
        raise InputError(f"targets are rotation indices in 0..{len(MACHINES) - 1}, got {bad}.")
    if not cfg.anr_db:
        raise InputError("no anomaly-to-normal ratio to run: give at least one --anr.")
    out = output_folder(out)
    material = load_material(clips, events, cfg)
    (out / "material.json").write_text(json.dumps(material.describe(), indent=2) + "\n", encoding="utf-8")
    rotation = {cfg.target_name(r): r for r in cfg.targets}
    tasks = [(cfg.target_name(r), s) for r in cfg.targets for s in cfg.seeds]
    return run_resumable(out / "results.csv", tasks, lambda target, seed: run_sound_task(material, rotation[target], seed, cfg),
                     desc="sound", progress=progress)
