"""Tiny synthetic image domains (8x8 RGB) for the image tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SMALL = {"levels": 2, "steps": 1, "hidden": 8, "epochs": 3, "batch_size": 16, "device": "cpu"}


def domain_images(kind: str, n: int, seed: int, size: int = 8) -> np.ndarray:
    """``kind`` "warm": dark, red-heavy, smooth; "cool": bright, blue-heavy, noisy. uint8 NCHW."""
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 1, size)[None, None, :] * np.ones((n, 1, size, 1))
    if kind == "warm":
        colour = np.array([170.0, 90.0, 40.0])[None, :, None, None]
        img = colour * (0.6 + 0.4 * base) + rng.normal(0, 6, (n, 3, size, size))
    else:
        colour = np.array([90.0, 150.0, 220.0])[None, :, None, None]
        img = colour * (1.0 - 0.3 * base) + rng.normal(0, 25, (n, 3, size, size))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def write_folder(folder: Path, images: np.ndarray, prefix: str = "img") -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img.transpose(1, 2, 0)).save(folder / f"{prefix} {i:03d}.png")
    return folder
