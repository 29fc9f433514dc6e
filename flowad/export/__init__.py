"""Deployment: export fitted detectors to ONNX for devices without PyTorch."""

from flowad.export.onnx import OnnxScorer, export_onnx

__all__ = ["OnnxScorer", "export_onnx"]
