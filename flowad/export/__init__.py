"""Deployment: export fitted detectors to ONNX for devices without PyTorch."""

from flowad.export.onnx import export_onnx
from flowad.export.scorer import OnnxScorer

__all__ = ["OnnxScorer", "export_onnx"]
