"""The one reader of the published tables shipped with the benchmark package.

Numbers that flowad did not compute (a study's table, a data README's baselines) are typed
once, with their source, in the CSV files of ``flowad_bench/data/``; every report reads them
here and labels them "published". Each file holds ``#`` comment lines (the source and what the
numbers mean), then a header and rows::

    # PUBLISHED numbers, not produced by flowad: ...
    experiment,method,n_adapt,auroc
    late_life,gauss_pooled,10,0.598

The files:

* :data:`ROBUSTREALNVP` — the RobustRealNVP study's mean test AUCs on ODDS (one row per
  dataset, a column per method, ``in_study_mean`` marking the datasets of its mean);
* :data:`ADAFLOW_SOUND` — the AdaFlow study's Table 1 on its own sound data;
* :data:`FEMTO_README` — the simple-baseline AUROCs of the FEMTO / PRONOSTIA data README.
"""

from __future__ import annotations

import io
from importlib import resources

import pandas as pd

from flowad.exceptions import InputError

__all__ = [
    "ADAFLOW_SOUND",
    "FEMTO_README",
    "PUBLISHED_TABLES",
    "ROBUSTREALNVP",
    "published_source",
    "published_table",
]

#: The RobustRealNVP study's Table 1 (ODDS, mean test ROC AUC over 5 seeds).
ROBUSTREALNVP = "robustrealnvp_published.csv"
#: The AdaFlow study's Table 1 (AUROC, NLL) on its own toy-car sound data.
ADAFLOW_SOUND = "adaflow_study_sound.csv"
#: The simple baselines published in the FEMTO / PRONOSTIA data README.
FEMTO_README = "femto_readme_baselines.csv"
#: Every published table shipped in ``flowad_bench/data/``.
PUBLISHED_TABLES = (ROBUSTREALNVP, ADAFLOW_SOUND, FEMTO_README)


def _text(name: str) -> str:
    if name not in PUBLISHED_TABLES:
        raise InputError(f"Unknown published table {name!r}; the package ships {list(PUBLISHED_TABLES)}.")
    return resources.files("flowad_bench").joinpath("data", name).read_text(encoding="utf-8")


def published_table(name: str) -> pd.DataFrame:
    """The rows of a published table, comment lines skipped.

    Parameters
    ----------
    name : str
        One of :data:`PUBLISHED_TABLES`.

    Returns
    -------
    DataFrame
        One column per header field; numeric columns as float64 (``0.882`` is the same float as
        ``float("0.882")``), empty cells NaN.

    Raises
    ------
    InputError
        If ``name`` is not a shipped table.

    Examples
    --------
    >>> published_table(FEMTO_README).columns.tolist()
    ['experiment', 'method', 'n_adapt', 'auroc']
    """
    return pd.read_csv(io.StringIO(_text(name)), comment="#")


def published_source(name: str) -> str:
    """The comment lines of a published table (where its numbers come from), joined into one line.

    Examples
    --------
    >>> published_source(ADAFLOW_SOUND).startswith("PUBLISHED numbers, not produced by flowad")
    True
    """
    lines = _text(name).splitlines()
    return " ".join(ln.lstrip("# ").strip() for ln in lines if ln.startswith("#"))
