"""Reading folders of images into ``(N, C, H, W)`` uint8 arrays, and writing image grids.

Needs Pillow (``pip install "flowad[images]"``). Every image is read, checked (readable,
channel count, size), centre-cropped to a square and resized to ``size x size`` with a
bicubic filter (Pillow's ``reducing_gap`` keeps downsampling antialiased). Failures name the
file and say what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from flowad.exceptions import InputError

__all__ = ["IMAGE_SUFFIXES", "holdout_split", "image_files", "read_image_folder", "read_images", "write_image_grid"]

#: File name suffixes read as images (case-insensitive); other files in a folder are ignored.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")

_MODES = {1: "L", 3: "RGB"}


def _pil():  # noqa: ANN202
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - depends on the install
        raise InputError('Reading images needs Pillow: pip install "flowad[images]".') from None
    return Image


def image_files(folder: str | Path) -> list[Path]:
    """The image files directly inside ``folder`` (by suffix), sorted by name."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"Image folder {str(folder)!r} does not exist.")
    if not folder.is_dir():
        raise InputError(f"{str(folder)!r} is not a folder; pass a folder of image files.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(
            f"Image folder {str(folder)!r} holds no image files (looked for {', '.join(IMAGE_SUFFIXES)})."
        )
    return files


def read_images(files: Sequence[str | Path], *, size: int = 32, channels: int = 3, convert: bool = False) -> np.ndarray:
    """Read image files into a uint8 array of shape ``(N, channels, size, size)``.

    Parameters
    ----------
    files : sequence of path-like
        Image files.
    size : int, default=32
        Output height and width. An image smaller than ``size`` on either side is refused
        (it would be upsampled); non-square images are centre-cropped to a square first.
    channels : {1, 3}, default=3
        1 = grayscale, 3 = RGB.
    convert : bool, default=False
        Convert images with another channel layout (grayscale, RGBA, palette, CMYK) to
        ``channels``; by default such an image is refused, naming the file.

    Returns
    -------
    ndarray of shape (N, channels, size, size), uint8
    """
    image_mod = _pil()
    if channels not in _MODES:
        raise InputError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}.")
    if not (isinstance(size, int) and size >= 1):
        raise InputError(f"size must be an int >= 1, got {size!r}.")
    want = _MODES[channels]
    out = np.empty((len(files), channels, size, size), dtype=np.uint8)
    for i, path in enumerate(files):
        path = Path(path)
        try:
            with image_mod.open(path) as img:
                img.load()
                mode = img.mode
                if mode != want:
                    if not convert:
                        n = len(img.getbands())
                        raise InputError(
                            f"Image {str(path)!r} has {n} channel(s) (mode {mode}), expected {channels} ({want}); "
                            "convert it, or pass convert=True (--convert) to convert every image."
                        )
                    img = img.convert(want)
                w, h = img.size
                if min(w, h) < size:
                    raise InputError(
                        f"Image {str(path)!r} is {w}x{h}, smaller than the requested {size}x{size}; "
                        "use a smaller --size or remove it."
                    )
                side = min(w, h)
                left, top = (w - side) // 2, (h - side) // 2
                img = img.crop((left, top, left + side, top + side))
                img = img.resize((size, size), image_mod.Resampling.BICUBIC, reducing_gap=3.0)
                arr = np.asarray(img, dtype=np.uint8)
        except InputError:
            raise
        except FileNotFoundError:
            raise InputError(f"Image file {str(path)!r} does not exist.") from None
        except (OSError, ValueError, SyntaxError) as err:  # PIL.UnidentifiedImageError is an OSError
            raise InputError(f"Cannot read image {str(path)!r}: {err}. Remove or replace the file.") from None
        out[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    return out


def read_image_folder(
    folder: str | Path, *, size: int = 32, channels: int = 3, convert: bool = False
) -> tuple[np.ndarray, list[str]]:
    """Read every image of ``folder`` (see :func:`read_images`); return the array and file names."""
    files = image_files(folder)
    return read_images(files, size=size, channels=channels, convert=convert), [p.name for p in files]


def write_image_grid(columns: Sequence[np.ndarray], path: str | Path, *, pad: int = 2, scale: int = 1) -> Path:
    """Write images side by side as one PNG: column ``j`` holds ``columns[j]``, one row per image.

    Parameters
    ----------
    columns : sequence of arrays of shape (N, C, H, W)
        Same shape each, values 0..255 (clipped and rounded).
    path : path-like
        PNG file to write; its folder must exist.
    pad : int, default=2
        White pixels between images.
    scale : int, default=1
        Enlarge the finished grid this many times (nearest neighbour: every pixel stays visible).
    """
    image_mod = _pil()
    path = Path(path)
    if not path.parent.exists():
        raise InputError(f"Output folder {str(path.parent)!r} does not exist.")
    shapes = {tuple(np.shape(c)) for c in columns}
    if len(shapes) != 1 or len(next(iter(shapes))) != 4:
        raise InputError(f"Every grid column must be an (N, C, H, W) array of one shape, got {sorted(shapes)}.")
    n, c, h, w = next(iter(shapes))
    canvas = np.full((n * (h + pad) + pad, len(columns) * (w + pad) + pad, c), 255, dtype=np.uint8)
    for j, col in enumerate(columns):
        img = np.clip(np.rint(np.asarray(col, dtype=np.float64)), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        for i in range(n):
            y0, x0 = pad + i * (h + pad), pad + j * (w + pad)
            canvas[y0 : y0 + h, x0 : x0 + w] = img[i]
    if not (isinstance(scale, int) and scale >= 1):
        raise InputError(f"scale must be an int >= 1, got {scale!r}.")
    canvas = canvas.repeat(scale, axis=0).repeat(scale, axis=1)
    image_mod.fromarray(canvas[:, :, 0] if c == 1 else canvas).save(path, format="PNG")
    return path


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, held_out)`` of ``n`` items, ``round(fraction * n)`` held out at random.

    Seeded (``numpy.random.default_rng(seed)``) and sorted, so the same seed gives the same
    split. ``fraction = 0`` holds nothing out; at least one item is always kept for training.
    """
    if not (isinstance(fraction, (int, float)) and 0.0 <= fraction < 1.0):
        raise InputError(f"The held-out fraction must be in [0, 1), got {fraction!r}.")
    k = min(int(round(fraction * n)), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[k:]), np.sort(order[:k])
