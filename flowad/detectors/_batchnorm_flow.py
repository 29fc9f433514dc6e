"""AdaFlow's comparison flow: ordinary batch normalization on the pooled domains, optionally
fine-tuned per new domain.

* ``finetune_epochs=0``: the AdaFlow architecture with ordinary (single-domain) batch
  normalization, trained on all training domains pooled; ``adapt`` only sets the new domain's
  threshold (no adaptation).
* ``finetune_epochs > 0``: that flow *fine-tuned* on the new domain: ``adapt`` copies the pooled
  flow and takes Adam steps on all its parameters with the new rows (``finetune_epochs`` passes,
  minibatches of ``finetune_batch_size``, learning rate ``finetune_lr``; weight decay and
  gradient clipping as in training), then recomputes its batch-norm statistics on those rows.
  One fine-tuned copy is kept per adapted domain; the training domains keep the pooled flow.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from flowad.detectors._adaflow import _architecture, _check_architecture
from flowad.detectors._base import _check_param, _store_params, register, seed_from
from flowad.detectors._domains import DomainDetector, clone_flow
from flowad.exceptions import InputError, ModelFileError
from flowad.flows.adaflow import build_batchnorm_flow, update_statistics
from flowad.flows.flow import Flow, standard_normal_log_prob
from flowad.io.persistence import State

__all__ = ["BatchNormFlow"]


@register("batchnorm-flow")
class BatchNormFlow(DomainDetector):
    """Flow with ordinary batch normalization trained on the pooled domains (AdaFlow's baseline).

    The architecture is AdaFlow's with a single set of batch-norm statistics, recomputed
    exactly over all training rows after training. With ``finetune_epochs=0`` it is the
    no-adaptation baseline; with ``finetune_epochs > 0``, the fine-tuning baseline (module
    docstring).

    Parameters
    ----------
    finetune_epochs : int, default=0
        0: ``adapt`` does not change the model (only the domain's threshold is set). > 0:
        ``adapt`` fine-tunes a copy of the pooled model on the new rows for this many epochs.
    finetune_batch_size : int, default=128
        Minibatch size of fine-tuning.
    finetune_lr : float, default=1e-4
        Adam learning rate of fine-tuning (a tenth of the training default, so that a few
        hundred new rows refine the model rather than overwrite it).
    n_layers, alpha, n_couplings, hidden, s_max
        Architecture, as in :class:`AdaFlow`.
    epochs, batch_size, lr, weight_decay, grad_clip
        Adam settings of the pooled training (defaults 100, 256, 1e-3, 1e-5, 10.0).
    contamination, threshold, dtype, device, random_state, verbose
        As in :class:`AdaFlow` (per-domain thresholds from a target false-alarm rate).

    Attributes
    ----------
    flow_ : Flow
        The pooled flow.
    domain_models_ : list of (Flow or None)
        Fine-tuned copy of each domain in ``domains_`` (None: the pooled flow is used).
    domains_, thresholds_, domain_counts_, threshold_, decision_scores_, labels_
        As in :class:`AdaFlow`.
    mean_, scale_, scaling_, constant_features_
        Robust standardization, as in :class:`AdaFlow`.
    """

    def __init__(
        self,
        *,
        contamination: float = 0.05,
        finetune_epochs: int = 0,
        finetune_batch_size: int = 128,
        finetune_lr: float = 1e-4,
        n_layers: int = 2,
        alpha: float = 0.1,
        n_couplings: int = 0,
        hidden: Sequence[int] = (64, 64),
        s_max: float = 3.0,
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        grad_clip: float | None = 10.0,
        threshold: float | None = None,
        dtype: str = "float32",
        device: str = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        _store_params(self, locals())

    def _validate_params(self) -> None:
        super()._validate_params()
        e = self.finetune_epochs
        _check_param("finetune_epochs", e, isinstance(e, numbers.Integral) and e >= 0, "an int >= 0")
        b = self.finetune_batch_size
        _check_param("finetune_batch_size", b, isinstance(b, numbers.Integral) and b >= 2, "an int >= 2")
        lr = self.finetune_lr
        _check_param("finetune_lr", lr, isinstance(lr, numbers.Real) and lr > 0, "a float > 0")
        _check_architecture(self)

    def _build_flow(self, n_features: int) -> Flow:
        return build_batchnorm_flow(n_features, **_architecture(self))

    def _model_log_density(self, model: nn.Module, Z: Tensor, prior_count: int = 0, *, refresh: bool = False) -> Tensor:
        """Log-density of ``Z`` under ``model``; with ``refresh``, first recompute its batch-norm
        statistics from ``Z`` (merged with ``prior_count`` earlier rows), in the same pass."""
        if not refresh:
            return model.log_prob(Z)
        z, logdet = update_statistics(model.bijection, Z, 0, prior_count=prior_count)
        return standard_normal_log_prob(z) + logdet

    def _fit_model(self, flow: Flow, Z: Tensor, context: Tensor, generator: torch.Generator) -> Tensor:
        with torch.no_grad():
            self._model_log_density(flow.eval(), Z, refresh=True)  # explicit start of the statistics
        self.history_ = self._train(flow, Z, generator)  # pooled: domains ignored
        self.domain_models_: list[nn.Module | None] = [None] * len(self.domains_)
        with torch.no_grad():
            return self._model_log_density(flow, Z, refresh=True)

    def _model(self, index: int) -> nn.Module:
        model = self.domain_models_[index]
        return self.flow_ if model is None else model

    def _log_density(self, Z: Tensor, index: int) -> Tensor:
        return self._model_log_density(self._model(index), Z)

    def _adapt_rows(self, Z: Tensor, index: int, prior_count: int) -> Tensor:
        if self.finetune_epochs == 0:
            return self._model_log_density(self.flow_, Z)
        model = clone_flow(self.flow_ if prior_count == 0 else self._model(index))
        config = self._train_config(
            epochs=int(self.finetune_epochs), batch_size=int(self.finetune_batch_size), lr=float(self.finetune_lr), trim_ratio=0.0
        )
        generator = torch.Generator(device=Z.device).manual_seed(seed_from(self.random_state) + 2 + index)
        with torch.enable_grad():
            self._train(model, Z, generator, config=config)
        self.domain_models_[index] = model
        return self._model_log_density(model, Z, prior_count, refresh=True)

    def _adapt_chunks(self, chunks: Callable[[], Iterator[Tensor]], index: int) -> int:
        if self.finetune_epochs:
            raise InputError("Fine-tuning needs the adaptation rows in memory: pass an array of at most chunk_size rows.")
        return sum(int(c.shape[0]) for c in chunks())

    def _new_domain(self) -> None:
        self.domain_models_.append(None)

    def _drop_domain(self, index: int) -> None:
        self.domain_models_.pop(index)

    def _snapshot(self, index: int) -> nn.Module | None:
        return self.domain_models_[index]

    def _restore(self, index: int, snapshot: nn.Module | None) -> None:
        self.domain_models_[index] = snapshot

    def _extra_state(self) -> State:
        tensors, fields = super()._extra_state()
        for i, model in enumerate(self.domain_models_):
            if model is not None:
                tensors.update({f"domain_model.{i}.{k}": v for k, v in model.state_dict().items()})
        return tensors, fields

    def _load_extra_state(self, tensors: dict[str, Tensor], manifest: dict[str, Any]) -> None:
        super()._load_extra_state(tensors, manifest)
        n_features = int((~self.constant_features_).sum())
        self.domain_models_ = []
        for i in range(len(self.domains_)):
            prefix = f"domain_model.{i}."
            state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            if not state:
                self.domain_models_.append(None)
                continue
            model = self._build_flow(n_features).to(device=self.device_, dtype=self.torch_dtype_)
            try:
                model.load_state_dict(state, strict=True)
            except RuntimeError as err:
                raise ModelFileError(f"fine-tuned model of domain {self.domains_[i]!r} does not load: {err}") from None
            self.domain_models_.append(model.eval())
