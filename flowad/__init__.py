"""flowad: flow-based unsupervised anomaly detection.

Detectors follow scikit-learn's estimator API and PyOD's score conventions:
``decision_function`` is the anomaly score (negative log-likelihood, higher = more
anomalous), ``score_samples`` the log-density (higher = more normal), ``predict`` 0/1.
"""

from flowad._version import __version__
from flowad.detectors import AdaFlow, ImageAdaFlow, RealNVP, RobustRealNVP, TrimRealNVP, load
from flowad.exceptions import (
    FlowadError,
    InputError,
    InverseUnavailableError,
    ModelFileError,
    NonFiniteError,
    NotFittedError,
    TrainingDivergedError,
    UnknownDomainError,
)

__all__ = [
    "AdaFlow",
    "FlowadError",
    "ImageAdaFlow",
    "InputError",
    "InverseUnavailableError",
    "ModelFileError",
    "NonFiniteError",
    "NotFittedError",
    "RealNVP",
    "RobustRealNVP",
    "TrainingDivergedError",
    "TrimRealNVP",
    "UnknownDomainError",
    "__version__",
    "load",
]
