"""Machinery shared by the multi-domain detectors (AdaFlow and its comparison models).

A *domain* is a named operating condition (a room, a machine, a season). Every multi-domain
detector keeps, per domain: its name (in ``domains_``), a threshold (``thresholds_``), the number
of rows its adaptation statistics summarise (``domain_counts_``) and a bounded sample of the
anomaly scores of that domain's own (normal) data, from which the threshold is read.

Thresholds from a target false-alarm rate
-----------------------------------------
No anomalies are known in a new domain, so ``thresholds_[domain]`` is the
``100 * (1 - contamination)`` percentile (numpy's linear interpolation) of the anomaly scores of
the rows the domain was fitted or adapted on, scored after adaptation: if those rows are
normal and like future normal data, about a fraction ``contamination`` of future normal rows
is flagged. The scores are in-sample, so with few rows the rate is optimistic, and the quantile
resolution is ``1 / n``. At most :data:`CALIBRATION_MAX_ROWS` scores are kept per domain (a
uniform reservoir sample beyond that, drawn with a generator seeded by the row count, so it is
reproducible); memory stays bounded whatever the stream length. A fixed ``threshold``
hyper-parameter overrides this for every domain.
"""

from __future__ import annotations

import copy
import numbers
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

from flowad._validation import check_adaptation_range, check_is_fitted
from flowad.detectors._base import SCORE_BATCH, BaseFlowDetector, _check_param
from flowad.exceptions import InputError, ModelFileError, UnknownDomainError
from flowad.flows.flow import Flow
from flowad.io.persistence import State
from flowad.training import TrainConfig

__all__ = ["CALIBRATION_MAX_ROWS", "DEFAULT_DOMAIN", "MIN_ADAPT_SAMPLES", "ADAPT_CHUNK_SIZE", "DomainDetector"]

#: Name of the single domain when ``fit`` is called without ``domains``.
DEFAULT_DOMAIN = "default"
#: Fewer adaptation rows than this trigger a warning: the relative standard error of a variance
#: estimated from n rows is about sqrt(2 / (n - 1)), 26 % at n = 30 and 47 % at n = 10.
MIN_ADAPT_SAMPLES = 30
#: Anomaly scores kept per domain for its threshold (a uniform reservoir sample beyond this).
CALIBRATION_MAX_ROWS = 100_000
#: Default rows per chunk of ``adapt``: arrays up to this size are adapted in one pass in
#: memory, larger ones (and chunk sources) are streamed chunk by chunk.
ADAPT_CHUNK_SIZE = 16_384

#: What ``adapt`` accepts besides an array: a zero-argument callable returning an iterable of
#: ``(n_i, n_features)`` arrays, called once per pass over the data.
ChunkSource = Callable[[], Iterable[Any]]


def domain_name(domain: Any, *, argument: str = "domain") -> str:
    """Domain names are strings; integer labels are converted with ``str``."""
    if isinstance(domain, str):
        return domain
    if isinstance(domain, numbers.Integral) and not isinstance(domain, bool):
        return str(int(domain))
    raise InputError(f"{argument} must be a str (or an int, converted to str), got {domain!r} of type {type(domain).__name__}.")


def reservoir_merge(kept: np.ndarray, seen: int, new: np.ndarray, cap: int = CALIBRATION_MAX_ROWS) -> np.ndarray:
    """Uniform reservoir sample (Algorithm R) of at most ``cap`` values of a stream.

    ``kept`` is a uniform sample of the ``seen`` values so far; ``new`` are the next values.
    The generator is seeded by ``seen``, so the result is reproducible and needs no state.
    """
    room = max(0, cap - kept.size)
    out = np.concatenate([kept, new[:room]])
    rest = new[room:]
    if rest.size:
        rng = np.random.default_rng(seen)
        positions = seen + room + np.arange(rest.size)  # 0-based index of each value in the stream
        slots = rng.integers(0, positions + 1)
        take = np.flatnonzero(slots < cap)
        if take.size:  # later values overwrite earlier ones in the same slot, as in a sequential loop
            last = take.size - 1 - np.unique(slots[take][::-1], return_index=True)[1]
            out[slots[take][last]] = rest[take][last]
    return out


class DomainDetector(BaseFlowDetector):
    """Base of detectors that score per domain: ``fit(X, domains=...)``, ``adapt``,
    ``partial_adapt``, ``remove_domain`` and ``score_samples(X, domain=...)``.

    Subclasses implement ``_build_flow``, ``_fit_model`` (train, then return the training
    log-densities), ``_log_density``, ``_adapt_rows``, and may override ``_adapt_chunks`` and
    the extra-state hooks. A detector whose per-domain state is one row of statistics per
    domain in some layers (AdaFlow) names those layers in ``_layers``; the default
    ``_new_domain``, ``_drop_domain``, ``_snapshot`` and ``_restore`` act on them. Others
    override those four.
    """

    # --------------------------------------------------------------------- subclass hooks
    def _fit_model(self, flow: Flow, Z: torch.Tensor, context: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Train ``flow`` (already on device) and return the training rows' log-densities."""
        raise NotImplementedError  # pragma: no cover

    def _log_density(self, Z: torch.Tensor, index: int) -> torch.Tensor:
        """Log-density (or its stand-in) of standardized rows ``Z`` in domain ``index``."""
        raise NotImplementedError  # pragma: no cover

    def _adapt_rows(self, Z: torch.Tensor, index: int, prior_count: int) -> torch.Tensor:
        """Adapt domain ``index`` to rows ``Z`` (merged with ``prior_count`` earlier rows);
        return the rows' log-densities under the adapted model."""
        raise NotImplementedError  # pragma: no cover

    def _adapt_chunks(self, chunks: Callable[[], Iterator[torch.Tensor]], index: int) -> int:
        """Adapt domain ``index`` to a re-readable chunk stream; return the row count."""
        raise InputError(f"{type(self).__name__} cannot adapt from a stream of chunks; pass an array.")

    def _layers(self) -> list[Any]:
        """Layers holding one row of statistics per domain (``add_domain``, ``remove_domain``,
        ``statistics(index)`` and ``set_statistics(index, mean, var)``); none by default."""
        return []

    def _new_domain(self) -> None:
        """Make room for one more domain (index ``len(domains_)``)."""
        for layer in self._layers():
            layer.add_domain()

    def _drop_domain(self, index: int) -> None:
        """Forget the model state of domain ``index``."""
        for layer in self._layers():
            layer.remove_domain(index)

    def _snapshot(self, index: int) -> Any:
        """State of domain ``index`` to restore if an adaptation fails."""
        return [tuple(t.clone() for t in layer.statistics(index)) for layer in self._layers()]

    def _restore(self, index: int, snapshot: Any) -> None:
        """Put back what ``_snapshot`` returned."""
        for layer, (mean, var) in zip(self._layers(), snapshot, strict=True):
            layer.set_statistics(index, mean, var)

    def _context(self, Z: torch.Tensor, index: int) -> torch.Tensor:
        """The context tensor that puts every row of ``Z`` in domain ``index``."""
        return torch.full((Z.shape[0],), index, dtype=torch.long, device=Z.device)

    def _translate(self, X: np.ndarray, source: int, target: int, batch: int = SCORE_BATCH) -> np.ndarray:
        """Validated rows ``X`` mapped from domain ``source`` to ``target``: forward through the
        flow with ``source``'s context, back with ``target``'s, ``batch`` rows at a time; the
        constant features are left as they are."""
        out = X.copy()
        keep = ~self.constant_features_
        bij = self.flow_.bijection
        with torch.inference_mode():
            for start in range(0, X.shape[0], batch):
                Z = self._standardize(X[start : start + batch])
                z, _ = bij(Z, self._context(Z, source))
                back, _ = bij.inverse(z, self._context(z, target))
                out[start : start + batch, keep] = back.double().cpu().numpy() * self.scale_[keep] + self.mean_[keep]
        return out

    # ------------------------------------------------------------------------------ fit
    def _train(self, flow: Flow, Z: torch.Tensor, generator: torch.Generator, context: torch.Tensor | None = None,
               config: TrainConfig | None = None) -> list[float]:
        """Untrimmed maximum likelihood (the training rows are assumed normal)."""
        return self._fit_flow(flow, Z, config or self._train_config(trim_ratio=0.0), generator, context=context)

    def _domain_labels(self, domains: Any, n: int) -> tuple[list[str], np.ndarray]:
        if domains is None:
            return [DEFAULT_DOMAIN], np.zeros(n, dtype=np.int64)
        if hasattr(domains, "to_numpy"):
            domains = domains.to_numpy()
        arr = np.asarray(domains, dtype=object)
        if arr.ndim != 1 or arr.shape[0] != n:
            raise InputError(f"domains must be a 1-D sequence with one label per row of X ({n}), got shape {arr.shape}.")
        names = np.array([domain_name(d, argument="each domain label") for d in arr], dtype=object)
        uniq, index = np.unique(names, return_inverse=True)
        counts = np.bincount(index, minlength=uniq.size)
        few = [(str(u), int(c)) for u, c in zip(uniq, counts, strict=True) if c < 2]
        if few:
            raise InputError(f"Every domain needs at least 2 rows in X to estimate its statistics; got {few}.")
        for u, c in zip(uniq, counts, strict=True):
            if c < MIN_ADAPT_SAMPLES:
                warnings.warn(_few_rows_message(str(u), int(c)), UserWarning, stacklevel=3)
        return [str(u) for u in uniq], index.astype(np.int64)

    def fit(self, X: Any, y: Any = None, *, domains: Any = None) -> DomainDetector:
        """Fit on the rows of ``X`` from one or more domains (assumed normal).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data of all domains. numpy, pandas or torch.
        y : ignored
        domains : array-like of shape (n_samples,) or None, default=None
            Domain label of each row (str, or int converted to str). None: one domain named
            ``"default"``. Each domain needs at least 2 rows (a warning below 30).

        Returns
        -------
        self
        """
        X, Z, seed = self._begin_fit(X)
        names, labels = self._domain_labels(domains, X.shape[0])
        context = torch.as_tensor(labels, device=self.device_)
        self.domains_ = names
        flow, generator = self._new_flow(Z, seed)
        log_density = self._fit_model(flow, Z, context, generator)
        self.flow_ = flow.eval()
        self._calibrate_domains(log_density, labels)
        return self

    def _calibrate_domains(self, log_density: torch.Tensor, labels: np.ndarray) -> None:
        """Training scores, per-domain thresholds and labels from the training rows' model
        log-density (``labels``: each row's domain index into ``domains_``)."""
        scores = -(log_density.detach().double().cpu().numpy() + self._score_offset)
        self._check_scores(scores)
        self.decision_scores_ = scores
        self.thresholds_, self.domain_counts_, self._calibration = {}, {}, {}
        for k, name in enumerate(self.domains_):
            mine = scores[labels == k]
            self._set_domain(name, reservoir_merge(np.empty(0), 0, mine), mine.size)
        self.threshold_ = (
            float(self.threshold) if self.threshold is not None
            else float(np.percentile(scores, 100.0 * (1.0 - self.contamination)))
        )
        per_row = np.array([self.thresholds_[n] for n in self.domains_])[labels]
        self.labels_ = (scores > per_row).astype(np.int64)

    def fit_predict(self, X: Any, y: Any = None, *, domains: Any = None) -> np.ndarray:
        """Fit and return the 0/1 labels of the training rows (each against its domain's threshold)."""
        return self.fit(X, domains=domains).labels_

    # --------------------------------------------------------------------------- domains
    def _index(self, domain: Any) -> int:
        if domain is None:
            if len(self.domains_) == 1:
                return 0
            raise InputError(
                f"domain is required: this {type(self).__name__} knows {len(self.domains_)} domains {self.domains_}."
            )
        name = domain_name(domain)
        try:
            return self.domains_.index(name)
        except ValueError:
            raise UnknownDomainError(
                f"Unknown domain {name!r}; known domains: {self.domains_}. Call adapt(X, domain={name!r}) first."
            ) from None

    def _set_domain(self, name: str, kept: np.ndarray, count: int) -> None:
        """Store the domain's kept scores and row count, and read its threshold from them."""
        self._calibration[name] = kept
        self.domain_counts_[name] = int(count)
        self.thresholds_[name] = (
            float(self.threshold) if self.threshold is not None
            else float(np.percentile(kept, 100.0 * (1.0 - self.contamination)))
        )

    def _open(self, name: str) -> tuple[int, bool, Any]:
        new = name not in self.domains_
        if new:
            self._new_domain()
            self.domains_.append(name)
        index = self.domains_.index(name)
        return index, new, self._snapshot(index)

    def _rollback(self, name: str, index: int, new: bool, snapshot: Any) -> None:
        if new:
            self._drop_domain(index)
            self.domains_.remove(name)
        else:
            self._restore(index, snapshot)

    def _chunks(self, X: Any, chunk_size: int) -> tuple[np.ndarray | None, ChunkSource | None]:
        """An in-memory array, or a chunk source yielding validated arrays."""
        if callable(X):
            source = X
        elif hasattr(X, "shape") and len(X.shape) == 2 and X.shape[0] > chunk_size:
            rows = X.shape[0]

            def source() -> Iterator[Any]:
                for start in range(0, rows, chunk_size):
                    yield X[start : start + chunk_size]
        else:
            return self._check_input(X), None

        def checked() -> Iterator[np.ndarray]:
            for chunk in source():
                yield self._check_input(chunk)

        return None, checked

    def adapt(self, X: Any, *, domain: Any, chunk_size: int | None = None) -> DomainDetector:
        """Adapt to the normal rows ``X`` of ``domain`` (new, or replacing its current state).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or callable
            Normal rows of the domain. An array of at most ``chunk_size`` rows is adapted in
            memory; a larger array is read in chunks of ``chunk_size`` rows. A callable is a
            chunk source: ``X()`` returns an iterable of arrays of shape ``(n_i, n_features)``
            and is called once per pass (it must yield the same rows every time).
        domain : str or int
            Domain name; created if unknown.
        chunk_size : int or None, default=None
            Rows per chunk; None means :data:`ADAPT_CHUNK_SIZE`.

        Returns
        -------
        self

        Warns
        -----
        UserWarning
            With fewer than :data:`MIN_ADAPT_SAMPLES` rows.

        Notes
        -----
        Passes over the data (AdaFlow): in memory, **one** forward pass computes every AdaBN
        layer's statistics in order (layer ``j`` from inputs normalized with the new statistics
        of layers ``< j``) and, from the same pass, the scores that set the threshold.
        Streamed, **one pass per AdaBN layer** (2 for the default architecture; pass ``j`` runs
        the stack only up to layer ``j``) plus **one scoring pass** for the threshold; memory is
        O(D) per layer plus one chunk, whatever the number of rows. ``chunk_size`` splits
        arrays only; a chunk source's chunks are used as they come.
        """
        check_is_fitted(self)
        name = domain_name(domain)
        cs = ADAPT_CHUNK_SIZE if chunk_size is None else chunk_size
        _check_param("chunk_size", cs, isinstance(cs, numbers.Integral) and cs >= 2, "None or an int >= 2")
        X, source = self._chunks(X, int(cs))
        if X is not None:
            _check_rows(X.shape[0], name)
            self._check_spread(X.min(axis=0), X.max(axis=0), name)
        index, new, snapshot = self._open(name)
        try:
            if X is not None:
                with torch.no_grad():
                    log_density = self._adapt_rows(self._standardize(X), index, 0)
                scores = -(log_density.double().cpu().numpy() + self._score_offset)
                self._check_scores(scores)
                kept, count = reservoir_merge(np.empty(0), 0, scores), X.shape[0]
            else:
                count = self._adapt_chunks(lambda: (self._standardize(c) for c in source()), index)
                _check_rows(count, name)
                kept, seen = np.empty(0), 0
                low = high = None
                for chunk in source():  # one scoring pass for the threshold, memory bounded
                    if chunk.shape[0]:
                        low = chunk.min(axis=0) if low is None else np.minimum(low, chunk.min(axis=0))
                        high = chunk.max(axis=0) if high is None else np.maximum(high, chunk.max(axis=0))
                    scores = self._scores(chunk, index)
                    kept, seen = reservoir_merge(kept, seen, scores), seen + scores.size
                self._check_spread(low, high, name)
        except BaseException:
            self._rollback(name, index, new, snapshot)
            raise
        self._set_domain(name, kept, count)
        return self

    def partial_adapt(self, X: Any, *, domain: Any) -> DomainDetector:
        """Merge a new batch of normal rows of ``domain`` into its state (online adaptation).

        The domain's statistics then summarise all rows given so far (``domain_counts_``), as
        if they had been adapted on at once, except that each batch's contribution to deeper
        layers was computed with the earlier layers' statistics as they stood after that batch
        (exact for the first layer; the gap shrinks as the statistics settle). The threshold is
        read from the kept scores of all batches, each scored when it arrived. An unknown
        domain is created; it needs at least 2 rows in total.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        domain : str or int

        Returns
        -------
        self
        """
        check_is_fitted(self)
        name = domain_name(domain)
        X = self._check_input(X)
        prior = self.domain_counts_.get(name, 0)
        _check_rows(prior + X.shape[0], name)
        if prior == 0:  # the domain's statistics come from these rows alone
            self._check_spread(X.min(axis=0), X.max(axis=0), name)
        index, new, snapshot = self._open(name)
        try:
            with torch.no_grad():
                log_density = self._adapt_rows(self._standardize(X), index, prior)
            scores = -(log_density.double().cpu().numpy() + self._score_offset)
            self._check_scores(scores)
        except BaseException:
            self._rollback(name, index, new, snapshot)
            raise
        kept = reservoir_merge(self._calibration.get(name, np.empty(0)), prior, scores)
        self._set_domain(name, kept, prior + X.shape[0])
        return self

    def _check_spread(self, low: np.ndarray, high: np.ndarray, name: str) -> None:
        """Refuse adaptation rows in which a modelled feature never changes (see
        :func:`flowad._validation.check_adaptation_range`)."""
        names = getattr(self, "feature_names_in_", None)
        check_adaptation_range(low, high, domain=name, ignore=self.constant_features_, names=None if names is None else list(names))

    def remove_domain(self, domain: Any) -> DomainDetector:
        """Forget ``domain`` (its statistics, threshold and kept scores).

        Raises
        ------
        UnknownDomainError
            If ``domain`` is not known.
        InputError
            If it is the only domain left.
        """
        check_is_fitted(self)
        index = self._index(domain)
        if len(self.domains_) == 1:
            raise InputError(f"Cannot remove {self.domains_[0]!r}: it is the only domain of this model.")
        name = self.domains_.pop(index)
        self._drop_domain(index)
        for table in (self.thresholds_, self.domain_counts_, self._calibration):
            table.pop(name, None)
        return self

    # --------------------------------------------------------------------------- scoring
    def _scores(self, X: np.ndarray, index: int) -> np.ndarray:
        """Anomaly scores of validated rows ``X`` in domain ``index``, in batches."""
        return -self._batched_log_density(X, lambda Z: self._log_density(Z, index))

    def score_samples(self, X: Any, domain: Any = None) -> np.ndarray:
        """Log-density of each row of ``X`` in ``domain`` (higher = more normal).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        domain : str, int or None, default=None
            A known domain; may be omitted when the model knows a single one.

        Returns
        -------
        ndarray of shape (n_samples,), float64

        Raises
        ------
        UnknownDomainError
            If ``domain`` is not known (the message lists the known ones).
        """
        check_is_fitted(self)
        index = self._index(domain)
        return -self._scores(self._check_input(X), index)

    def decision_function(self, X: Any, domain: Any = None) -> np.ndarray:
        """Anomaly score of each row in ``domain``: ``-score_samples`` (higher = more anomalous)."""
        return -self.score_samples(X, domain)

    def predict(self, X: Any, domain: Any = None) -> np.ndarray:
        """1 where the anomaly score exceeds ``thresholds_[domain]``, else 0."""
        check_is_fitted(self)
        index = self._index(domain)
        return (self.decision_function(X, domain) > self.thresholds_[self.domains_[index]]).astype(np.int64)

    # ------------------------------------------------------------------------ persistence
    def _extra_state(self) -> State:
        tensors = {
            "domains.counts": torch.tensor([self.domain_counts_[n] for n in self.domains_], dtype=torch.int64),
            "domains.thresholds": torch.tensor([self.thresholds_[n] for n in self.domains_], dtype=torch.float64),
            "train.labels": torch.from_numpy(self.labels_),
        }
        for i, n in enumerate(self.domains_):
            tensors[f"domains.calibration.{i}"] = torch.from_numpy(np.ascontiguousarray(self._calibration[n], dtype=np.float64))
        return tensors, {"domains": list(self.domains_)}

    def _load_extra_state(self, tensors: dict[str, torch.Tensor], manifest: dict[str, Any]) -> None:
        names = manifest["domains"]
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)):
            raise ModelFileError(f"the manifest's domains must be a non-empty list of distinct names, got {names!r}.")
        counts = tensors["domains.counts"].tolist()
        thresholds = tensors["domains.thresholds"].tolist()
        if len(counts) != len(names) or len(thresholds) != len(names):
            raise ModelFileError(f"{len(names)} domains but {len(counts)} counts and {len(thresholds)} thresholds.")
        self.domains_ = list(names)
        self.domain_counts_ = dict(zip(names, (int(c) for c in counts), strict=True))
        self.thresholds_ = dict(zip(names, (float(t) for t in thresholds), strict=True))
        self._calibration = {n: tensors[f"domains.calibration.{i}"].numpy().astype(np.float64) for i, n in enumerate(names)}
        self.labels_ = tensors["train.labels"].numpy().astype(np.int64)


def _few_rows_message(name: str, n: int) -> str:
    return (
        f"Domain {name!r} has only {n} row(s) to estimate its statistics from (fewer than {MIN_ADAPT_SAMPLES}): "
        f"each variance is then uncertain by about {100 * np.sqrt(2.0 / max(n - 1, 1)):.0f} %, so scores and "
        "threshold of this domain are noisy. Adapt on more normal rows when you can."
    )


def _check_rows(n: int, name: str) -> None:
    if n < 2:
        raise InputError(f"Domain {name!r} needs at least 2 rows to estimate a variance, got {n}.")
    if n < MIN_ADAPT_SAMPLES:
        warnings.warn(_few_rows_message(name, n), UserWarning, stacklevel=3)


def clone_flow(flow: Flow) -> Flow:
    """A deep copy of ``flow`` (same device and dtype), in eval mode."""
    return copy.deepcopy(flow).eval()
