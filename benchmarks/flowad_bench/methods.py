"""The detectors a benchmark can run: flowad's flows and PyOD's baselines, by name.

Every method is built from its library's defaults, except what keeps a benchmark quiet,
seeded and on the CPU (``verbose=0``, ``random_state=seed``, ``device="cpu"``), and, in
``quick`` mode, fewer training epochs. PyOD is an optional dependency (``pip install
flowad[bench]``); a PyOD method whose class the installed PyOD lacks is reported as
unavailable, not silently dropped.

A method can refuse a training set it cannot fit meaningfully (:attr:`Method.check`): PyOD's
``MCD`` (minimum covariance determinant) needs more training rows than features — with fewer,
scikit-learn's ``MinCovDet`` still returns, but with a singular covariance and near-constant
scores. Such a task raises :class:`MethodError`; the runners record it in
``results_failures.csv`` and the tables show "–" for it.

PCA is PyOD's ``PCA`` with one argument set from the (standardized) training data:
``n_components`` = the numerical rank of the training matrix (``numpy.linalg.matrix_rank``).
PyOD's default keeps every component and divides by each one's explained variance, so on
rank-deficient training data (constant or collinear columns: one-hot blocks, mnist's blank
pixels, cardio) a zero variance makes every score infinite or lets a numerically-zero
direction dominate; where the data has full rank the result is PyOD's default.

Variants: a *label* ``Name[key=value,...]`` (:func:`parse_variant`, :func:`variant_label`)
names a method run with constructor overrides (values are Python literals), so a candidate
default is screened by the same runner and tables as the baselines.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import io
import os
import random
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from flowad.exceptions import InputError

__all__ = [
    "Method",
    "MethodError",
    "METHODS",
    "FLOWAD_METHODS",
    "PYOD_METHODS",
    "BASELINE_METHODS",
    "QUICK_EPOCHS",
    "base_name",
    "parse_variant",
    "variant_label",
    "available_methods",
    "get_method",
    "parse_methods",
    "count_parameters",
    "quiet_and_isolated",
]

#: Training epochs of flowad's flows in ``quick`` mode (their default is used otherwise).
QUICK_EPOCHS = 20


class MethodError(InputError):
    """An unknown method name, or a method whose library is not installed."""


@dataclass(frozen=True)
class Method:
    """A named detector of the benchmark.

    Attributes
    ----------
    name : str
        Name used on the command line and in the result files.
    library : {"flowad", "pyod"}
    module, cls : str
        Where the class lives (imported lazily, in the worker process).
    standardize : bool
        Whether the benchmark standardizes features with training statistics before
        ``fit`` (PyOD baselines). flowad's detectors standardize internally.
    kwargs : callable
        ``kwargs(n_features, seed, quick)`` -> constructor arguments.
    check : callable or None
        ``check(n_rows, n_features)`` -> None when the method can be fitted on a training set of
        that shape, else the reason it cannot (raised as :class:`MethodError` by :meth:`refuse`).
    data_kwargs : callable or None
        ``data_kwargs(X_train)`` -> constructor arguments decided from the (standardized)
        training data alone, never from labels; explicit overrides take precedence.
    """

    name: str
    library: str
    module: str
    cls: str
    standardize: bool
    kwargs: Callable[[int, int, bool], dict[str, Any]]
    check: Callable[[int, int], str | None] | None = None
    data_kwargs: Callable[[np.ndarray], dict[str, Any]] | None = None

    def refuse(self, n_rows: int, n_features: int) -> None:
        """Raise :class:`MethodError` if the method cannot be fitted on ``n_rows`` x ``n_features``."""
        reason = self.check(int(n_rows), int(n_features)) if self.check is not None else None
        if reason:
            raise MethodError(f"{self.name}: {reason}")

    def parameters(self) -> list[str]:
        """Names of the constructor's arguments (imports the class)."""
        klass = getattr(importlib.import_module(self.module), self.cls)
        return [p for p in inspect.signature(klass.__init__).parameters if p not in ("self", "args", "kwargs")]

    def available(self) -> bool:
        """Whether the installed library has this class."""
        try:
            return hasattr(importlib.import_module(self.module), self.cls)
        except ImportError:
            return False

    def build(self, n_features: int, seed: int, *, quick: bool = False, **overrides: Any) -> Any:
        """Construct the (unfitted) detector; ``overrides`` replace constructor arguments."""
        try:
            klass = getattr(importlib.import_module(self.module), self.cls)
        except (ImportError, AttributeError):
            raise MethodError(
                f"method {self.name!r} needs {self.module}.{self.cls}, which is not installed; "
                "install the benchmark extra: pip install 'flowad[bench]'."
            ) from None
        return klass(**{**self.kwargs(n_features, seed, quick), **overrides})


def _flowad_kwargs(n_features: int, seed: int, quick: bool) -> dict[str, Any]:
    kw: dict[str, Any] = {"random_state": seed, "device": "cpu", "verbose": 0}
    if quick:
        kw["epochs"] = QUICK_EPOCHS
    return kw


def _seed_only(n_features: int, seed: int, quick: bool) -> dict[str, Any]:
    return {"random_state": seed}


def _none(n_features: int, seed: int, quick: bool) -> dict[str, Any]:
    return {}


def _pyod_dl(epochs_quick: int) -> Callable[[int, int, bool], dict[str, Any]]:
    def kw(n_features: int, seed: int, quick: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"random_state": seed, "device": "cpu", "verbose": 0}
        if quick:
            out["epoch_num"] = epochs_quick
        return out

    return kw


def _deep_svdd(n_features: int, seed: int, quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"n_features": n_features, "random_state": seed, "verbose": 0}
    if quick:
        out["epochs"] = 10
    return out


def _more_rows_than_features(n_rows: int, n_features: int) -> str | None:
    if n_rows > n_features:
        return None
    return (
        f"needs more training rows than features, got {n_rows} rows and {n_features} features "
        "(the covariance of its support would be singular and the scores meaningless)"
    )


def _rank_components(X_train: np.ndarray) -> dict[str, Any]:
    return {"n_components": max(1, int(np.linalg.matrix_rank(X_train)))}


def _so_gaal(n_features: int, seed: int, quick: bool) -> dict[str, Any]:
    return {"stop_epochs": 3} if quick else {}


FLOWAD_METHODS = ("RealNVP", "TrimRealNVP", "RobustRealNVP")
PYOD_METHODS = (
    "IForest", "LOF", "OCSVM", "KNN", "ECOD", "COPOD", "HBOS", "PCA", "MCD",
    "AutoEncoder", "VAE", "DeepSVDD", "SO_GAAL",
)
#: The ``baselines`` group: PyOD's fast, classical detectors (no neural network; OCSVM is left
#: out: its fit is quadratic in the training rows).
BASELINE_METHODS = ("IForest", "KNN", "LOF", "ECOD", "COPOD", "HBOS", "PCA", "MCD")

METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        *(Method(n, "flowad", "flowad.detectors", n, False, _flowad_kwargs) for n in FLOWAD_METHODS),
        # RobustRealNVP's Gaussian core without the flow; standardizes internally (robustly).
        Method("TrimmedGaussian", "flowad", "flowad_bench.baselines", "TrimmedGaussian", False, _seed_only),
        Method("IForest", "pyod", "pyod.models.iforest", "IForest", True, _seed_only),
        Method("LOF", "pyod", "pyod.models.lof", "LOF", True, _none),
        Method("OCSVM", "pyod", "pyod.models.ocsvm", "OCSVM", True, _none),
        Method("KNN", "pyod", "pyod.models.knn", "KNN", True, _none),
        Method("ECOD", "pyod", "pyod.models.ecod", "ECOD", True, _none),
        Method("COPOD", "pyod", "pyod.models.copod", "COPOD", True, _none),
        Method("HBOS", "pyod", "pyod.models.hbos", "HBOS", True, _none),
        Method("PCA", "pyod", "pyod.models.pca", "PCA", True, _seed_only, data_kwargs=_rank_components),
        Method("MCD", "pyod", "pyod.models.mcd", "MCD", True, _seed_only, _more_rows_than_features),
        Method("AutoEncoder", "pyod", "pyod.models.auto_encoder", "AutoEncoder", True, _pyod_dl(5)),
        Method("VAE", "pyod", "pyod.models.vae", "VAE", True, _pyod_dl(5)),
        Method("DeepSVDD", "pyod", "pyod.models.deep_svdd", "DeepSVDD", True, _deep_svdd),
        # PyOD's SO_GAAL takes no seed argument; it is seeded through torch inside quiet_and_isolated.
        Method("SO_GAAL", "pyod", "pyod.models.so_gaal", "SO_GAAL", True, _so_gaal),
    ]
}


def base_name(label: str) -> str:
    """The method of a variant label: ``"RobustRealNVP[dequantize=True]"`` -> ``"RobustRealNVP"``."""
    return label.split("[", 1)[0].strip()


def _split_top_level(text: str, sep: str = ",") -> list[str]:
    """``text`` split at ``sep`` outside brackets and quotes: ``"a=(1, 2),b='x,y'"`` -> 2 parts."""
    parts, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _literal(key: str, text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise MethodError(
            f"value of {key!r} must be a Python literal (True, 0.1, (32, 32), 'auto'), got {text!r}; "
            "quote strings, e.g. key='auto'."
        ) from None


def variant_label(method: str, overrides: tuple[tuple[str, Any], ...] | list[tuple[str, Any]]) -> str:
    """The row label of ``method`` with ``overrides``: ``Name[key=repr(value),...]`` (``Name`` if none).

    >>> variant_label("RobustRealNVP", [("trim_ratio", 0.2), ("hidden", (32, 32))])
    'RobustRealNVP[trim_ratio=0.2,hidden=(32, 32)]'
    """
    if not overrides:
        return method
    return f"{method}[{','.join(f'{k}={v!r}' for k, v in overrides)}]"


def parse_variant(spec: str) -> tuple[str, str, tuple[tuple[str, Any], ...]]:
    """A ``--variant`` spec ``NAME:key=value,key=value`` -> (label, method, overrides).

    ``NAME`` is a method (case-insensitive); values are Python literals; the keys must be
    arguments of the method's constructor. The label is :func:`variant_label`'s.

    >>> parse_variant("RobustRealNVP:trim_ratio=0.2,hidden=(32, 32)")[0]
    'RobustRealNVP[trim_ratio=0.2,hidden=(32, 32)]'

    Raises
    ------
    MethodError
        For an unknown method, a missing ``:``, a key that is not a constructor argument, a
        repeated key, or a value that is not a literal.
    """
    name, sep, rest = spec.partition(":")
    if not sep or not rest.strip():
        raise MethodError(f"a variant is NAME:key=value[,key=value...], e.g. RobustRealNVP:dequantize=True; got {spec!r}.")
    method = get_method(name)
    overrides: list[tuple[str, Any]] = []
    for item in _split_top_level(rest):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier():
            raise MethodError(f"variant {spec!r}: {item!r} is not key=value.")
        if key in dict(overrides):
            raise MethodError(f"variant {spec!r}: {key!r} is given twice.")
        overrides.append((key, _literal(key, value.strip())))
    if method.available():
        known = method.parameters()
        unknown = [k for k, _ in overrides if k not in known]
        if unknown:
            raise MethodError(f"variant {spec!r}: {method.name} has no argument(s) {unknown}; its arguments: {known}.")
    out = tuple(overrides)
    return variant_label(method.name, out), method.name, out


def get_method(name: str) -> Method:
    """The method called ``name`` (case-insensitive; a variant label means its method).

    Raises
    ------
    MethodError
        If there is no such method.
    """
    by_lower = {k.lower(): v for k, v in METHODS.items()}
    try:
        return by_lower[base_name(name).lower()]
    except KeyError:
        raise MethodError(f"unknown method {name!r}; known methods: {list(METHODS)}.") from None


def available_methods() -> list[str]:
    """Names of the methods whose library is installed, in the order of :data:`METHODS`."""
    return [n for n, m in METHODS.items() if m.available()]


def parse_methods(spec: str | list[str] | None) -> list[str]:
    """Method names from a comma-separated string, a list, or the groups ``all``, ``flowad``,
    ``pyod``, ``baselines`` (:data:`BASELINE_METHODS`); ``none`` adds nothing (a run of variants only).

    ``None`` or ``"all"`` means every available method.

    Raises
    ------
    MethodError
        For an unknown name, or a requested method that is not installed.
    """
    if spec is None:
        items = ["all"]
    elif isinstance(spec, str):
        items = [s for s in spec.replace(" ", ",").split(",") if s]
    else:
        items = [s for part in spec for s in part.replace(" ", ",").split(",") if s]
    names: list[str] = []
    for item in items:
        key = item.lower()
        if key == "all":
            names += available_methods()
        elif key == "flowad":
            names += list(FLOWAD_METHODS)
        elif key == "pyod":
            names += [n for n in PYOD_METHODS if METHODS[n].available()]
        elif key == "none":
            continue
        elif key == "baselines":
            names += [n for n in BASELINE_METHODS if METHODS[n].available()]
        else:
            method = get_method(item)
            if not method.available():
                raise MethodError(
                    f"method {method.name!r} needs {method.module}.{method.cls}, which the installed "
                    f"{method.library} does not provide; install the benchmark extra: pip install 'flowad[bench]'."
                )
            names.append(method.name)
    return list(dict.fromkeys(names))


def count_parameters(estimator: Any) -> int | None:
    """Number of trainable parameters of the torch modules held by ``estimator`` (None if none).

    Looks at the fitted estimator's attributes (flowad's ``flow_``, PyOD's ``model`` /
    ``model_`` / ``generator`` / ``discriminator``); shared parameters count once.
    """
    seen: dict[int, int] = {}
    for value in vars(estimator).values():
        if isinstance(value, torch.nn.Module):
            for p in value.parameters():
                if p.requires_grad:
                    seen[id(p)] = p.numel()
    return sum(seen.values()) if seen else None


@contextlib.contextmanager
def quiet_and_isolated(seed: int) -> Iterator[None]:
    """Run third-party code silently and without leaking its global RNG changes.

    PyOD's deep detectors seed ``random``, numpy's and torch's global generators and set
    ``PYTHONHASHSEED``; some draw from them without a seed (DeepSVDD shuffles with
    ``np.random.shuffle``, SO_GAAL draws ``torch.rand``); some print every epoch. Inside this
    block stdout/stderr are captured, warnings are ignored, and the global generators of
    ``random``, numpy and torch start from ``seed`` so that such code is reproducible; every
    global RNG state and the environment variable are restored on exit, so the caller's global
    state is unchanged.
    """
    py_state = random.getstate()
    np_state = np.random.get_state()
    hash_seed = os.environ.get("PYTHONHASHSEED")
    sink = io.StringIO()
    try:
        with (
            torch.random.fork_rng(devices=[]),
            warnings.catch_warnings(),
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            warnings.simplefilter("ignore")
            # Seeding third-party code's global generators on purpose; restored in `finally`.
            random.seed(int(seed))
            np.random.seed(int(seed) % 2**32)
            torch.manual_seed(int(seed))
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        if hash_seed is None:
            os.environ.pop("PYTHONHASHSEED", None)
        else:
            os.environ["PYTHONHASHSEED"] = hash_seed
