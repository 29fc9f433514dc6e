"""Reading and writing flowad model files.

A model file is one `safetensors <https://huggingface.co/docs/safetensors>`_ file: the tensors
(weights, buffers, standardization, training scores) are stored as safetensors tensors, and a
JSON *manifest* (format name and version, flowad/torch versions, model kind, hyper-parameters,
fitted scalars) is stored in the safetensors header metadata under the key ``"flowad"``.
Nothing is ever unpickled, so loading a file cannot run code.

Integrity (format 2): the manifest records a SHA-256 digest of every tensor (name, dtype, shape,
bytes), and the header metadata key ``"flowad.sha256"`` holds the SHA-256 of the manifest's
exact text. Together they cover the whole content of the file, so a truncated, damaged or
edited file (a threshold, the kind, feature or domain names, a weight) is refused on load with
:class:`~flowad.exceptions.ModelFileError`. These are checksums, not signatures: they detect
damage and edits made without flowad, not someone who deliberately recomputes them.

Format 1 files (flowad 0.1.0 before the format change) are still read, but their manifest is not
covered by any digest (only their tensors are): loading one warns, and saving it again writes
format 2.

Before anything is built from it, the manifest is checked: JSON nested at most
:data:`MAX_DEPTH` levels and at most :data:`MAX_MANIFEST_BYTES` long, finite numbers only, and
the fields this module owns of the right type. Detector fields are checked by
:mod:`flowad.io.persistence`.

Writes go to a uniquely named temporary file in the target folder that is fsync'ed and then
atomically renamed over the target (:mod:`flowad.io._atomic`), so a crash mid-write never
leaves a half-written model in place, and the temporary files of a killed writer are removed by
the next save to the same path.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from flowad import _version
from flowad.exceptions import ModelFileError
from flowad.io._atomic import atomic_write

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_DEPTH",
    "MAX_MANIFEST_BYTES",
    "OLDEST_FORMAT_VERSION",
    "parse_json",
    "read_model_file",
    "write_model_file",
]

FORMAT_NAME = "flowad-model"
#: Bumped when a change makes older flowad releases unable to read new files.
#: 1: tensors digest only (flowad 0.1.0); 2: the manifest's text is digested too.
FORMAT_VERSION = 2
#: Oldest format this release still reads.
OLDEST_FORMAT_VERSION = 1
#: Deepest nesting of lists and objects accepted in a manifest.
MAX_DEPTH = 32
#: Longest manifest text accepted (a manifest holds names and scalars, not data).
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
_META_KEY = "flowad"
_SHA_KEY = "flowad.sha256"
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _json_depth(text: str) -> int:
    """Deepest nesting of ``[``/``{`` in JSON ``text`` (brackets inside strings ignored), without recursion."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRINGS.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(f"number {token} is out of the float range")
    return value


def _no_constant(token: str) -> float:
    raise ValueError(f"{token} is not allowed (numbers must be finite)")


def parse_json(text: str | bytes, what: str, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_MANIFEST_BYTES) -> Any:
    """Parse untrusted JSON ``text``: size and nesting depth checked first, finite numbers only.

    Raises
    ------
    ModelFileError
        Naming ``what`` (e.g. "'m.flowad' has a corrupt flowad manifest") and the problem.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ModelFileError(f"{what}: not UTF-8 text ({err}).") from None
    if len(text) > max_bytes:
        raise ModelFileError(f"{what}: {len(text):,} characters, more than the {max_bytes:,} accepted.")
    depth = _json_depth(text)
    if depth > max_depth:
        raise ModelFileError(f"{what}: nested {depth} levels deep, more than the {max_depth} accepted.")
    try:
        return json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError; so are huge ints
        raise ModelFileError(f"{what}: {err}") from None


def write_model_file(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], manifest: dict[str, Any]) -> Path:
    """Atomically write ``tensors`` and ``manifest`` to ``path``.

    Parameters
    ----------
    path : path-like
        Destination; its folder must exist. An existing file is replaced only once the new
        one is completely written, and keeps its file mode.
    tensors : dict of str to Tensor
        Tensors to store (moved to CPU, made contiguous).
    manifest : dict
        JSON-serialisable description (finite numbers only); ``format``, ``format_version``,
        the versions and ``digest`` are added.
    """
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"Cannot write model file {str(path)!r}: it is a directory.")
    if not path.parent.is_dir():
        raise ModelFileError(f"Cannot write model file {str(path)!r}: folder {str(path.parent)!r} does not exist.")
    cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    full = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "flowad_version": _version.__version__,
        "torch_version": torch.__version__.split("+")[0],
        **{k: v for k, v in manifest.items() if k not in ("format", "format_version", "digest")},
        "digest": _digest(cpu),
    }
    try:
        text = json.dumps(full, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"Model metadata is not JSON-serialisable (finite numbers only): {err}") from err
    payload = st_save(cpu, metadata={_META_KEY: text, _SHA_KEY: _text_digest(text)})
    return atomic_write(path, lambda fh: fh.write(payload))


def _header_metadata(data: bytes, what: str) -> dict[str, Any]:
    """The ``__metadata__`` of a safetensors buffer (8-byte header length, then JSON header)."""
    n = int.from_bytes(data[:8], "little")
    header = parse_json(data[8 : 8 + n], what, max_bytes=MAX_MANIFEST_BYTES * 2)
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def _check_version(path: Path, manifest: dict[str, Any]) -> int:
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < OLDEST_FORMAT_VERSION:
        raise ModelFileError(
            f"{str(path)!r} has an invalid format version {version!r} (expected an integer from "
            f"{OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}); the file is corrupted or was modified."
        )
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{str(path)!r} uses model-file format {version}, written by flowad "
            f"{manifest.get('flowad_version')}; this flowad {_version.__version__} reads formats "
            f"{OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}. Upgrade flowad to load it."
        )
    return version


def _check_fields(path: Path, manifest: dict[str, Any]) -> None:
    for key in ("flowad_version", "torch_version", "digest"):
        if not isinstance(manifest.get(key), str):
            raise ModelFileError(f"{str(path)!r} has an invalid manifest: {key!r} must be a string, got {manifest.get(key)!r}.")


def _integrity_error(path: Path, what: str) -> ModelFileError:
    return ModelFileError(
        f"{str(path)!r} failed its integrity check: its {what} do{'es' if what == 'manifest' else ''} not match "
        "the recorded digest (the file was modified or corrupted)."
    )


def read_model_file(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a model file written by :func:`write_model_file`.

    Format 2 files are verified as a whole (manifest and tensors). Format 1 files (written by
    flowad 0.1.0 before format 2) are read with their tensors verified but their manifest
    unverified, with a warning.

    Returns
    -------
    tensors : dict of str to Tensor
        On CPU.
    manifest : dict
        The JSON manifest.

    Raises
    ------
    ModelFileError
        If the path is missing or a directory, or the file is not a flowad model, corrupt,
        modified, has an invalid manifest, or uses an invalid or newer format version.
    """
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"Model file {str(path)!r} is a directory, not a model file.")
    if not path.exists():
        raise ModelFileError(f"Model file {str(path)!r} does not exist.")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ModelFileError(f"Cannot read model file {str(path)!r}: {err.strerror or err}.") from None
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, OSError, RuntimeError) as err:
        raise ModelFileError(
            f"{str(path)!r} is not a readable flowad model file (corrupt, truncated, or another format): {err}"
        ) from None
    meta = _header_metadata(data, f"{str(path)!r} has a corrupt safetensors header")
    text = meta.get(_META_KEY)
    if not isinstance(text, str):
        raise ModelFileError(f"{str(path)!r} is a safetensors file but not a flowad model (no flowad manifest).")
    signed = meta.get(_SHA_KEY)
    tampered = isinstance(signed, str) and signed != _text_digest(text)
    try:
        manifest = parse_json(text, f"{str(path)!r} has a corrupt flowad manifest")
    except ModelFileError:
        if tampered:
            raise _integrity_error(path, "manifest") from None
        raise
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ModelFileError(f"{str(path)!r} is not a flowad model file (format {found!r}).")
    version = _check_version(path, manifest)
    if tampered or (version >= 2 and signed is None):  # a digest is checked whatever version the manifest claims
        raise _integrity_error(path, "manifest")
    _check_fields(path, manifest)
    if _digest(tensors) != manifest["digest"]:
        raise _integrity_error(path, "tensors")
    if version < 2:
        warnings.warn(
            f"{str(path)!r} uses model-file format {version}, whose manifest (kind, parameters, threshold, "
            "names) is not covered by the integrity check; save it again to write format "
            f"{FORMAT_VERSION}.",
            UserWarning,
            stacklevel=3,
        )
    if manifest["flowad_version"] != _version.__version__:
        warnings.warn(
            f"{str(path)!r} was written by flowad {manifest['flowad_version']}; loading it with {_version.__version__}.",
            UserWarning,
            stacklevel=3,
        )
    return tensors, manifest
