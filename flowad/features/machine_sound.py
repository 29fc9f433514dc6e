"""File-name parsers and folder loaders for the public machine-sound data sets.

Two naming schemes are understood:

* **DCASE 2020 Task 2 / ToyADMOS / MIMII**: ``<machine>/<train|test>/<normal|anomaly>_id_XX_NNNNNNNN.wav``.
  The machine comes from the grandparent folder, the split from the parent folder; the
  machine ID ``XX`` is reported as ``section`` and the domain is the machine ID itself
  (``domain_name = "<machine>/id_XX"``): these releases have no source/target split.
* **DCASE 2021 and later**:
  ``section_XX_<source|target>_<train|test>_<normal|anomaly>_NNNN_<attributes>.wav``, in
  ``<machine>/<train|test>/``. Attributes are ``key_value`` pairs (``car_C2_spd_34V_mic_1`` ->
  ``{"car": "C2", "spd": "34V", "mic": "1"}``); an odd number of tokens is kept as one raw
  string under ``"raw"``. Evaluation files without labels (``section_XX_NNNN.wav``) parse with
  ``label=None`` and ``domain=None``. A ``<machine>_<train|test>_`` prefix before ``section_``
  (as in ``../shared/data/sound/dcase2023_clips``) gives the machine and split when the folders
  do not. ``domain_name = "<machine>/section_XX/<source|target>"``.

Labels: ``label`` is ``"normal"`` / ``"anomaly"`` / None and ``y`` is 0 / 1 / -1 (unknown).
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from flowad.exceptions import InputError

__all__ = ["SoundFileInfo", "parse_attributes", "parse_sound_path", "scan_machine_sound"]

_SPLITS = ("train", "test")
_DCASE2020 = re.compile(r"^(?P<label>normal|anomaly)_id_(?P<section>\d+)_(?P<number>\d+)$")
_DCASE2021 = re.compile(
    r"^(?:(?P<prefix>.+?)_)?section_(?P<section>\d+)_(?P<domain>source|target)_(?P<split>train|test)_"
    r"(?P<label>normal|anomaly)_(?P<number>\d+)(?:_(?P<attrs>.+))?$"
)
_DCASE2021_UNLABELED = re.compile(r"^(?:(?P<prefix>.+?)_)?section_(?P<section>\d+)_(?P<number>\d+)$")


@dataclass(frozen=True)
class SoundFileInfo:
    """What a machine-sound file name says.

    Attributes
    ----------
    path : str
    machine : str or None
        Machine type (``ToyCar``, ``fan``, ...); None when neither folders nor prefix give it.
    section : str
        Section (2021+) or machine ID (2020), as in the name (``"00"``).
    domain : {"source", "target"} or None
        None for DCASE 2020 names and unlabeled evaluation files.
    split : {"train", "test"} or None
    label : {"normal", "anomaly"} or None
    y : int
        1 anomaly, 0 normal, -1 unknown.
    number : str
        The file's number in its group.
    attributes : dict of str to str
    naming : {"dcase2020", "dcase2021"}
    domain_name : str
        Name to use as a detector's domain (see the module docstring).
    """

    path: str
    machine: str | None
    section: str
    domain: str | None
    split: str | None
    label: str | None
    y: int
    number: str
    attributes: dict[str, str] = field(default_factory=dict)
    naming: str = "dcase2021"
    domain_name: str = ""


def parse_attributes(text: str | None) -> dict[str, str]:
    """``"car_C2_spd_34V_mic_1"`` -> ``{"car": "C2", "spd": "34V", "mic": "1"}``.

    An odd number of ``_``-separated tokens cannot be paired and gives ``{"raw": text}``.

    Examples
    --------
    >>> parse_attributes("vel_9_loc_A")
    {'vel': '9', 'loc': 'A'}
    >>> parse_attributes("noAttributes")
    {'raw': 'noAttributes'}
    """
    if not text:
        return {}
    tokens = text.split("_")
    if len(tokens) % 2:
        return {"raw": text}
    return dict(zip(tokens[0::2], tokens[1::2], strict=True))


def _folders(p: Path) -> tuple[str | None, str | None]:
    """(machine, split) from ``.../<machine>/<train|test>/file``, when the parent is a split folder."""
    parent = p.parent.name
    if parent in _SPLITS:
        machine = p.parent.parent.name or None
        return machine, parent
    return None, None


def _prefix(prefix: str | None) -> tuple[str | None, str | None]:
    """(machine, split) from a ``<machine>_<train|test>`` prefix."""
    if not prefix:
        return None, None
    for s in _SPLITS:
        if prefix.endswith("_" + s):
            return prefix[: -len(s) - 1] or None, s
    return prefix, None


def parse_sound_path(path: str | os.PathLike[str]) -> SoundFileInfo:
    """Parse one machine-sound file path (either naming scheme).

    Raises
    ------
    InputError
        If the name matches neither scheme, or the split in the name and in the folder disagree.

    Examples
    --------
    >>> info = parse_sound_path("fan/train/normal_id_02_00000012.wav")
    >>> info.machine, info.section, info.split, info.y, info.domain_name
    ('fan', '02', 'train', 0, 'fan/id_02')
    >>> info = parse_sound_path("gearbox/test/section_01_target_test_anomaly_0040_volt_1.5_wt_130.wav")
    >>> info.domain, info.y, info.attributes, info.domain_name
    ('target', 1, {'volt': '1.5', 'wt': '130'}, 'gearbox/section_01/target')
    """
    p = Path(path)
    stem = p.stem
    folder_machine, folder_split = _folders(p)
    m = _DCASE2020.match(stem)
    if m:
        machine = folder_machine
        return SoundFileInfo(
            path=str(p),
            machine=machine,
            section=m["section"],
            domain=None,
            split=folder_split,
            label=m["label"],
            y=int(m["label"] == "anomaly"),
            number=m["number"],
            naming="dcase2020",
            domain_name=f"{machine or 'unknown'}/id_{m['section']}",
        )
    m = _DCASE2021.match(stem)
    labeled = m is not None
    if m is None:
        m = _DCASE2021_UNLABELED.match(stem)
    if m is None:
        raise InputError(
            f"{p.name!r} matches no machine-sound naming scheme; expected "
            "'<normal|anomaly>_id_XX_NNNNNNNN.wav' (DCASE 2020 / ToyADMOS / MIMII) or "
            "'section_XX_<source|target>_<train|test>_<normal|anomaly>_NNNN[_<attributes>].wav' (DCASE 2021+)."
        )
    prefix_machine, prefix_split = _prefix(m["prefix"])
    machine = folder_machine or prefix_machine
    name_split = m["split"] if labeled else None
    splits = {s for s in (name_split, folder_split, prefix_split) if s is not None}
    if len(splits) > 1:
        raise InputError(f"{p}: the split in the file name and in its folder or prefix disagree ({sorted(splits)}).")
    split = splits.pop() if splits else None
    domain = m["domain"] if labeled else None
    label = m["label"] if labeled else None
    return SoundFileInfo(
        path=str(p),
        machine=machine,
        section=m["section"],
        domain=domain,
        split=split,
        label=label,
        y=-1 if label is None else int(label == "anomaly"),
        number=m["number"],
        attributes=parse_attributes(m["attrs"]) if labeled else {},
        naming="dcase2021",
        domain_name=f"{machine or 'unknown'}/section_{m['section']}/{domain or 'unknown'}",
    )


def scan_machine_sound(
    folder: str | os.PathLike[str], *, strict: bool = True, suffixes: tuple[str, ...] = (".wav",)
) -> pd.DataFrame:
    """Parse every audio file under ``folder`` (recursively) into a table.

    Parameters
    ----------
    folder : path-like
        A data-set root (``<machine>/<train|test>/...``), one machine's folder, or a flat folder.
    strict : bool, default=True
        Raise on a file name that matches no scheme; False skips it with a warning.
    suffixes : tuple of str, default=(".wav",)

    Returns
    -------
    DataFrame
        One row per file, sorted by path: the fields of :class:`SoundFileInfo`, with
        ``attributes`` as a dict and one ``attr_<key>`` column per attribute key.

    Raises
    ------
    InputError
        If ``folder`` is not a folder, holds no audio file, or (``strict``) a name does not parse.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder.")
    wanted = {s.lower() for s in suffixes}
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in wanted)
    if not files:
        raise InputError(f"No audio files ({', '.join(sorted(wanted))}) in {root} or its subfolders.")
    rows, bad = [], []
    for p in files:
        try:
            rows.append(asdict(parse_sound_path(p)))
        except InputError as err:
            if strict:
                raise
            bad.append(f"{p.name} ({err})")
    if bad:
        warnings.warn(f"Skipped {len(bad)} file(s) with unknown names, e.g. {bad[0]}", UserWarning, stacklevel=2)
    if not rows:
        raise InputError(f"No file under {root} has a machine-sound name.")
    frame = pd.DataFrame(rows)
    keys = sorted({k for a in frame["attributes"] for k in a})
    for k in keys:
        frame[f"attr_{k}"] = [a.get(k) for a in frame["attributes"]]
    return frame
