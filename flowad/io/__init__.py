"""Code-free model files: safetensors tensors plus a versioned JSON manifest."""

from flowad.io.model_file import FORMAT_NAME, FORMAT_VERSION, read_model_file, write_model_file

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "read_model_file", "write_model_file"]
