"""Files: code-free model files (safetensors tensors plus a versioned JSON manifest, both covered
by digests, the manifest validated before anything is built), the detector layout inside them
with the registry of model kinds (:mod:`flowad.io.persistence`), and data tables
(:mod:`flowad.io.tables`). Both are written atomically (:mod:`flowad.io._atomic`)."""

from flowad.io.model_file import FORMAT_NAME, FORMAT_VERSION, read_model_file, write_model_file
from flowad.io.persistence import load_detector, read_detector, register, save_detector

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "load_detector",
    "read_detector",
    "read_model_file",
    "register",
    "save_detector",
    "write_model_file",
]
