"""From a folder of machine-sound WAV files to a fitted, adapted AdaFlow and per-file anomaly scores.

A thin composition of existing parts:

1. :func:`scan_sound_folder` parses every file name with
   :func:`~flowad.features.machine_sound.parse_sound_path` (DCASE 2020 / ToyADMOS / MIMII and
   DCASE 2021+ names) and gives each file a *detector domain* (see ``domain_by`` below);
2. :func:`~flowad.features.audio.extract_folder` computes the frame features (log-mel with a
   context window, :class:`~flowad.features.audio.AudioFeatureConfig`), optionally cached;
3. :class:`~flowad.AdaFlow` is fitted on the frames of the normal training files with their
   domains (:meth:`SoundDetector.fit`), adapted to a domain from that domain's normal training
   files by forward passes only (:meth:`SoundDetector.adapt`), and scores the frames of test
   files in their domain (:meth:`SoundDetector.score`).

Domains
-------
``domain_by`` chooses the detector domain of a file from its name:

* ``"domain"`` (default): ``<machine>/section_XX/<source|target>`` for DCASE 2021+ names, and
  ``<machine>/id_XX`` for DCASE 2020 / ToyADMOS / MIMII names (the parser's ``domain_name``);
* ``"section"``: ``<machine>/section_XX`` (or ``<machine>/id_XX``): source and target pooled;
* ``"attributes"``: ``<machine>/section_XX/<attributes>``, e.g. ``ToyCar/section_00/car_C2_spd_34V_mic_1``
  (one domain per operating condition; a test file whose attributes were never seen in training
  has an unknown domain).

A ``domain`` argument given to :meth:`SoundDetector.adapt` or :meth:`SoundDetector.score`
overrides the names for every file of the call.

Which files are used
--------------------
Training and adaptation read the files whose split (from the name or the ``train``/``test``
folder) is ``"train"`` or unknown, skipping files labelled ``anomaly``. Scoring reads the files
whose split is ``"test"`` or unknown (``split=None`` scores every file).
:meth:`SoundDetector.fit` with ``adapt_target=True`` (the default) trains the flow on the
training files of every domain except DCASE *target* ones, then adapts each target domain
present among the training files from its normal files: AdaFlow's intended use (pre-train on
the well-recorded domains, adapt to the new one without gradients). ``adapt_target=False``
trains on all training domains jointly.

Per-file score
--------------
A file's anomaly score is the **mean of its frames' anomaly scores** (negative log-likelihood
per context-window frame, in nats, from :meth:`AdaFlow.decision_function` in the file's domain).
This is the DCASE Task 2 baselines' convention (they average frame reconstruction errors over
the clip). It equals the clip's negative log-likelihood under independent frames divided by the
number of frames, so files of different lengths are comparable, and averaging smooths the
frame-to-frame noise of the score. Its weakness is dilution: a short transient anomaly (a knock in a 10 s clip) moves
the mean little; ``aggregate="max"`` (the worst frame) or ``"median"`` are offered for that
trade-off. The frame-level thresholds of AdaFlow (``thresholds_``) do not apply to file
means, so no 0/1 label is produced: rank files by score, or calibrate a threshold on normal
files.

Model files
-----------
:meth:`SoundDetector.save` writes AdaFlow's ordinary model file (readable by
:func:`flowad.load`) and adds, in its JSON manifest, an ``"audio_pipeline"`` entry holding the
feature settings (:class:`~flowad.features.audio.AudioFeatureConfig` fields), ``domain_by``,
``aggregate`` and the machine filter; :meth:`SoundDetector.load` restores them, so scoring
uses the features the model was trained on. The generic ``flowad adapt`` command rewrites a
model file without that entry; use ``flowad sound adapt`` (or :meth:`SoundDetector.adapt`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flowad._validation import check_is_fitted
from flowad.detectors import AdaFlow
from flowad.exceptions import InputError, ModelFileError, UnknownDomainError
from flowad.features.audio import AUDIO_SUFFIXES, AudioFeatureConfig, extract_folder
from flowad.features.machine_sound import scan_machine_sound
from flowad.io.persistence import read_detector, save_detector

__all__ = ["AGGREGATES", "DOMAIN_BY", "MANIFEST_KEY", "SoundDetector", "aggregate_frames", "scan_sound_folder"]

#: Ways to choose a file's detector domain from its name (see the module docstring).
DOMAIN_BY = ("domain", "section", "attributes")
#: Ways to turn a file's frame scores into one score.
AGGREGATES = ("mean", "median", "max")
#: Key of the pipeline's settings in the model file's manifest.
MANIFEST_KEY = "audio_pipeline"

_COLUMNS = ["file", "path", "machine", "section", "dcase_domain", "split", "label", "y", "domain"]


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"{name} must be one of {list(choices)}, got {value!r}.")


def _domain_key(row: pd.Series, domain_by: str) -> str:
    machine = row["machine"] or "unknown"
    group = f"id_{row['section']}" if row["naming"] == "dcase2020" else f"section_{row['section']}"
    if domain_by == "domain":
        return str(row["domain_name"])
    if domain_by == "section":
        return f"{machine}/{group}"
    attrs = row["attributes"]
    text = "_".join(f"{k}_{v}" for k, v in attrs.items()) if "raw" not in attrs else attrs["raw"]
    return f"{machine}/{group}/{text or 'no_attributes'}"


def scan_sound_folder(
    folder: str | os.PathLike[str],
    *,
    machine: str | None = None,
    domain_by: str = "domain",
    domain: str | None = None,
) -> pd.DataFrame:
    """Parse the machine-sound files under ``folder`` into a table with a detector domain per file.

    Parameters
    ----------
    folder : path-like
        A data-set root (``<machine>/<train|test>/...``), one machine's folder, or a flat folder
        (searched recursively for ``.wav``/``.flac``/``.ogg`` files).
    machine : str or None, default=None
        Keep only this machine type.
    domain_by : {"domain", "section", "attributes"}, default="domain"
        How a file's domain is read from its name (module docstring).
    domain : str or None, default=None
        Use this domain for every file instead.

    Returns
    -------
    DataFrame
        One row per file, sorted by path: ``file`` (name), ``path``, ``machine``, ``section``,
        ``dcase_domain`` (``source``/``target``/None), ``split``, ``label``
        (``normal``/``anomaly``/None), ``y`` (1/0/-1 unknown) and ``domain``.

    Raises
    ------
    InputError
        If the folder is missing or holds no audio file, a name matches no naming scheme, or
        ``machine`` matches no file (the message lists the machines found).
    """
    _check_choice("domain_by", domain_by, DOMAIN_BY)
    table = scan_machine_sound(folder, suffixes=AUDIO_SUFFIXES)
    if machine is not None:
        found = sorted({str(m) for m in table["machine"]})
        table = table[table["machine"] == machine]
        if table.empty:
            raise InputError(f"No file of machine {machine!r} under {folder}; machines found: {found}.")
    keys = [domain if domain is not None else _domain_key(row, domain_by) for _, row in table.iterrows()]
    out = pd.DataFrame(
        {
            "file": [Path(p).name for p in table["path"]],
            "path": table["path"].to_numpy(),
            "machine": table["machine"].to_numpy(),
            "section": table["section"].to_numpy(),
            "dcase_domain": table["domain"].to_numpy(),
            "split": table["split"].to_numpy(),
            "label": table["label"].to_numpy(),
            "y": table["y"].to_numpy(dtype=np.int64),
            "domain": keys,
        },
        columns=_COLUMNS,
    )
    return out.reset_index(drop=True)


def aggregate_frames(frame_scores: np.ndarray, how: str = "mean") -> float:
    """One file's score from its frames' anomaly scores.

    Parameters
    ----------
    frame_scores : ndarray of shape (n_frames,)
    how : {"mean", "median", "max"}, default="mean"

    Returns
    -------
    float

    Examples
    --------
    >>> aggregate_frames(np.array([1.0, 2.0, 6.0]))
    3.0
    >>> aggregate_frames(np.array([1.0, 2.0, 6.0]), "max")
    6.0
    """
    _check_choice("aggregate", how, AGGREGATES)
    s = np.asarray(frame_scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise InputError(f"frame_scores must be a non-empty 1-D array, got shape {s.shape}.")
    return float({"mean": np.mean, "median": np.median, "max": np.max}[how](s))


def _training_files(table: pd.DataFrame, what: str, source: Any) -> pd.DataFrame:
    keep = table[table["split"].isin(["train"]) | table["split"].isna()]
    keep = keep[keep["y"] != 1]
    if keep.empty:
        raise InputError(
            f"No normal training files for {what} in {source}: {what} reads files whose split is 'train' "
            f"(or unknown) and whose label is not 'anomaly'; found {len(table)} file(s) with splits "
            f"{sorted({str(s) for s in table['split']})}."
        )
    return keep


@dataclass
class SoundDetector:
    """AdaFlow on log-mel frames of machine-sound files, scoring whole files.

    Parameters
    ----------
    detector : AdaFlow or None, default=None
        The (unfitted) detector to train; None gives ``AdaFlow(stationary_frames=config.frames)``
        (the context window's frames, so each domain's Gaussian uses their stationarity) with its
        other defaults. A detector given here keeps its own ``stationary_frames`` (1 or the
        window's frame count).
    config : AudioFeatureConfig, default=AudioFeatureConfig()
        Feature settings (16 kHz, FFT 512, hop 256, 64 mel bands, 5 context frames each side).
    domain_by : {"domain", "section", "attributes"}, default="domain"
    aggregate : {"mean", "median", "max"}, default="mean"
        How a file's score is made from its frames' scores (module docstring).
    machine : str or None, default=None
        Use only the files of this machine type (DCASE trains one model per machine type).
    cache_dir : path-like or None, default=None
        Per-file feature cache (:func:`~flowad.features.audio.extract_folder`).
    progress : bool, default=False
        Progress bar over files during feature extraction.

    Examples
    --------
    >>> sd = SoundDetector(AdaFlow(epochs=20, random_state=0), machine="fan")  # doctest: +SKIP
    >>> sd.fit("dev_data/fan")                                                # doctest: +SKIP
    >>> scores = sd.score("dev_data/fan")                                      # doctest: +SKIP
    """

    detector: AdaFlow | None = None
    config: AudioFeatureConfig = field(default_factory=AudioFeatureConfig)
    domain_by: str = "domain"
    aggregate: str = "mean"
    machine: str | None = None
    cache_dir: str | os.PathLike[str] | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        _check_choice("domain_by", self.domain_by, DOMAIN_BY)
        _check_choice("aggregate", self.aggregate, AGGREGATES)
        self.config.validate()
        frames = self.config.frames
        if self.detector is None:
            self.detector = AdaFlow(stationary_frames=frames)
        if not isinstance(self.detector, AdaFlow):
            raise InputError(f"detector must be an AdaFlow, got {type(self.detector).__name__}.")
        if self.detector.stationary_frames not in (1, frames):
            raise InputError(
                f"The detector's stationary_frames={self.detector.stationary_frames!r} does not match the features: "
                f"a context of {self.config.context} stacks {frames} frames per row (use {frames}, or 1 for no structure)."
            )

    # ------------------------------------------------------------------------ helpers
    def scan(self, source: str | os.PathLike[str], *, domain: str | None = None) -> pd.DataFrame:
        """:func:`scan_sound_folder` with this detector's machine and ``domain_by``."""
        return scan_sound_folder(source, machine=self.machine, domain_by=self.domain_by, domain=domain)

    def features(self, paths: Iterable[str | os.PathLike[str]]) -> list[np.ndarray]:
        """Frame features of each file (cached when ``cache_dir`` is set)."""
        return extract_folder(list(paths), self.config, cache_dir=self.cache_dir, progress=self.progress).features

    @property
    def domains_(self) -> list[str]:
        """Domains the fitted detector knows."""
        return list(self.detector.domains_)

    # ---------------------------------------------------------------------- fit/adapt
    def fit(self, source: str | os.PathLike[str], *, adapt_target: bool = True) -> SoundDetector:
        """Train on the normal training files under ``source``, with their domains.

        Parameters
        ----------
        source : path-like
            Folder of machine-sound files (see :func:`scan_sound_folder`).
        adapt_target : bool, default=True
            Train on the non-target domains, then adapt each domain made only of DCASE target
            files from its normal training files (forward passes only); a domain that also holds
            source files (``domain_by="section"``, say) is trained on. False: train on all
            domains jointly.

        Returns
        -------
        self

        Raises
        ------
        InputError
            For an empty folder, unparsable names, no normal training file, unreadable or
            silent audio (the message names the file), or no non-target training file.
        """
        files = _training_files(self.scan(source), "fit", source)
        feats = self.features(files["path"])
        targets = files["dcase_domain"].eq("target").to_numpy() & adapt_target
        # a domain that also has non-target files (domain_by="section", say) is trained, not adapted
        targets = targets & ~files["domain"].isin(set(files["domain"][~targets])).to_numpy()
        if targets.all():
            raise InputError(
                f"All {len(files)} normal training files in {source} are from DCASE target domains; "
                "AdaFlow needs source-domain files to train on (or pass adapt_target=False)."
            )
        train = [i for i in range(len(files)) if not targets[i]]
        X = np.concatenate([feats[i] for i in train])
        domains = np.repeat(files["domain"].to_numpy()[train], [feats[i].shape[0] for i in train])
        self.detector.fit(X, domains=domains)
        for name in pd.unique(files["domain"][targets]):
            rows = np.flatnonzero(targets & (files["domain"] == name).to_numpy())
            self.detector.adapt(np.concatenate([feats[i] for i in rows]), domain=name)
        return self

    def adapt(self, source: str | os.PathLike[str], *, domain: str | None = None) -> SoundDetector:
        """Adapt to the normal training files under ``source`` (forward passes only).

        Parameters
        ----------
        source : path-like
        domain : str or None, default=None
            Adapt this domain on all the files; None adapts each file's own domain (from its
            name) on that domain's files. A domain is created when new, replaced otherwise.

        Returns
        -------
        self
        """
        self._check_fitted()
        files = _training_files(self.scan(source, domain=domain), "adapt", source)
        feats = self.features(files["path"])
        for name in pd.unique(files["domain"]):
            rows = np.flatnonzero((files["domain"] == name).to_numpy())
            self.detector.adapt(np.concatenate([feats[i] for i in rows]), domain=name)
        return self

    # -------------------------------------------------------------------------- score
    def score(
        self, source: str | os.PathLike[str], *, domain: str | None = None, split: str | None = "test"
    ) -> pd.DataFrame:
        """Per-file anomaly scores of the files under ``source``.

        Parameters
        ----------
        source : path-like
        domain : str or None, default=None
            Score every file in this domain; None uses each file's domain from its name.
        split : {"test", "train"} or None, default="test"
            Score the files of this split (and those whose split is unknown); None: every file.

        Returns
        -------
        DataFrame
            One row per file: ``file``, ``machine``, ``section``, ``domain`` (the detector
            domain it was scored in), ``dcase_domain``, ``label`` (``normal``/``anomaly``/None),
            ``y`` (1/0/-1), ``n_frames``, ``score`` (the ``aggregate`` of the frames' negative
            log-likelihoods, higher = more anomalous) and ``path``.

        Raises
        ------
        UnknownDomainError
            If a file's domain is not known to the detector (the message lists them).
        InputError
            For an empty folder, no file of ``split``, unparsable names or unusable audio.
        """
        self._check_fitted()
        table = self.scan(source, domain=domain)
        if split is not None:
            table = table[table["split"].isin([split]) | table["split"].isna()].reset_index(drop=True)
            if table.empty:
                raise InputError(f"No {split!r} files to score in {source}; pass split=None to score every file.")
        unknown = sorted(set(table["domain"]) - set(self.detector.domains_))
        if unknown:
            raise UnknownDomainError(
                f"The model does not know the domain(s) {unknown} of files in {source}; known: {self.detector.domains_}. "
                "Adapt to them first, or score with an explicit domain."
            )
        feats = self.features(table["path"])
        scores = np.empty(len(table))
        for name in pd.unique(table["domain"]):
            rows = np.flatnonzero((table["domain"] == name).to_numpy())
            frame_scores = self.detector.decision_function(np.concatenate([feats[i] for i in rows]), domain=name)
            bounds = np.cumsum([0] + [feats[i].shape[0] for i in rows])
            for j, i in enumerate(rows):
                scores[i] = aggregate_frames(frame_scores[bounds[j] : bounds[j + 1]], self.aggregate)
        out = table[["file", "machine", "section", "domain", "dcase_domain", "label", "y"]].copy()
        out["n_frames"] = [f.shape[0] for f in feats]
        out["score"] = scores
        out["path"] = table["path"].to_numpy()
        return out

    # -------------------------------------------------------------------- persistence
    def _check_fitted(self) -> None:
        check_is_fitted(self.detector)

    def settings(self) -> dict[str, Any]:
        """The JSON-able settings stored in a model file (features, domains, aggregation, machine)."""
        return {
            "features": asdict(self.config),
            "domain_by": self.domain_by,
            "aggregate": self.aggregate,
            "machine": self.machine,
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted detector with the pipeline settings in its manifest (module docstring)."""
        self._check_fitted()
        save_detector(self.detector, path, extra=({}, {MANIFEST_KEY: self.settings()}))

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool = False,
        device: str = "cpu",
    ) -> SoundDetector:
        """Read a model file written by :meth:`save`.

        Raises
        ------
        ModelFileError
            If the file is not a flowad AdaFlow model or lacks the pipeline settings.
        """
        det, manifest = read_detector(path, device=device)
        settings = manifest.get(MANIFEST_KEY)
        if not isinstance(det, AdaFlow) or not isinstance(settings, dict):
            raise ModelFileError(
                f"{str(path)!r} is not a machine-sound model (no {MANIFEST_KEY!r} settings in an adaflow model file); "
                "write one with `flowad sound fit` or SoundDetector.save."
            )
        try:
            known = {f.name for f in fields(AudioFeatureConfig)}
            config = AudioFeatureConfig(**{k: v for k, v in settings["features"].items() if k in known})
            sd = cls(
                det, config, settings["domain_by"], settings["aggregate"], settings["machine"], cache_dir, progress
            )
        except (KeyError, TypeError, InputError) as err:
            raise ModelFileError(f"{str(path)!r} has invalid machine-sound settings: {err}") from None
        if det.n_features_in_ != config.n_features:
            raise ModelFileError(
                f"{str(path)!r}: the detector has {det.n_features_in_} features but its audio settings give {config.n_features}."
            )
        return sd
