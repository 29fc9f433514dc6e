"""Exceptions raised by flowad.

Every library-specific failure derives from :class:`FlowadError`, and also from the
builtin exception that fits (``ValueError`` for bad values, ``TypeError`` for wrong
types, ...), so ``except ValueError`` keeps working for users of scikit-learn.
"""

from __future__ import annotations

from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

__all__ = [
    "FlowadError",
    "InputError",
    "InputTypeError",
    "NotFittedError",
    "NonFiniteError",
    "TrainingDivergedError",
    "ModelFileError",
    "UnknownDomainError",
    "InverseUnavailableError",
]


class FlowadError(Exception):
    """Root of every exception raised on purpose by flowad."""


class InputError(FlowadError, ValueError):
    """The data given to a method has the wrong shape, type or values."""


class InputTypeError(InputError, TypeError):
    """The data given to a method holds values of a type that cannot be used (e.g. strings)."""


class NotFittedError(FlowadError, _SklearnNotFittedError):
    """A method that needs a fitted detector was called before ``fit``."""


class NonFiniteError(FlowadError, FloatingPointError):
    """A computation produced NaN or infinite values."""


class TrainingDivergedError(NonFiniteError):
    """The training loss became NaN or infinite; training was stopped."""


class ModelFileError(FlowadError, ValueError):
    """A model file is missing, corrupt, foreign or from an incompatible version."""


class UnknownDomainError(FlowadError, KeyError):
    """A domain name that the model does not know was requested."""

    def __str__(self) -> str:  # KeyError would repr() the message and add quotes
        return str(self.args[0]) if self.args else ""


class InverseUnavailableError(FlowadError, NotImplementedError):
    """A bijection cannot be inverted in its current state (e.g. batch norm in train mode)."""
