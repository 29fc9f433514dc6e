"""scikit-learn style anomaly detectors built on flows.

The product's detectors are the RealNVP family, :class:`AdaFlow` and the image flow
:class:`ImageAdaFlow` (exported by ``flowad``);
:class:`BatchNormFlow` is AdaFlow's no-adaptation / fine-tuning baseline, kept here for
comparisons. Model files are read and written by :mod:`flowad.io.persistence`.
"""

from flowad.detectors._adaflow import AdaFlow
from flowad.detectors._base import DETECTOR_REGISTRY, BaseFlowDetector
from flowad.detectors._batchnorm_flow import BatchNormFlow
from flowad.detectors._image import ImageAdaFlow
from flowad.detectors._realnvp import RealNVP, RobustRealNVP, TrimRealNVP

__all__ = [
    "DETECTOR_REGISTRY",
    "AdaFlow",
    "BaseFlowDetector",
    "BatchNormFlow",
    "ImageAdaFlow",
    "RealNVP",
    "RobustRealNVP",
    "TrimRealNVP",
    "load",
]


def load(path, *, device="cpu"):  # noqa: ANN001, ANN201 - re-documented below
    """Load any flowad model file; the detector class is read from the file.

    Parameters
    ----------
    path : path-like
        File written by ``detector.save(path)``.
    device : str, default="cpu"
        Where to put the model.

    Returns
    -------
    BaseFlowDetector
    """
    return BaseFlowDetector.load(path, device=device)
