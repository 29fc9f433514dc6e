"""`flowad bench images` on tiny synthetic folders (the real run is results/images/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flowad_bench.images import (
    FEATURES,
    ImageBenchConfig,
    colour_features,
    frechet_distance,
    images_markdown,
    run_images_benchmark,
)

pytest.importorskip("PIL", reason="the images extra (pillow) is not installed")


def _folder(path: Path, seed: int, colour: tuple[int, int, int], n: int = 24) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    path.mkdir()
    for i in range(n):
        img = np.clip(np.array(colour)[None, None, :] + rng.normal(0, 20, (16, 16, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(path / f"{i:03d}.png")
    return path


def test_frechet_distance_is_zero_for_equal_sets_and_grows_with_shift() -> None:
    a = np.random.default_rng(0).normal(size=(200, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, a + 2.0) == pytest.approx(12.0, rel=1e-6)


def test_colour_features_shapes() -> None:
    imgs = np.random.default_rng(0).integers(0, 256, (5, 3, 8, 8))
    assert [colour_features(imgs, k).shape for k in FEATURES] == [(5, 6), (5, 24), (5, 3)]
    np.testing.assert_allclose(colour_features(imgs, "colour histogram").reshape(5, 3, 8).sum(axis=2), 1.0)


def test_small_run_writes_rows_grids_and_report(tmp_path: Path) -> None:
    paintings = _folder(tmp_path / "paintings", 0, (180, 120, 40))
    photos = _folder(tmp_path / "photos", 1, (60, 120, 200))
    out = tmp_path / "out"
    out.mkdir()
    cfg = ImageBenchConfig(size=8, levels=2, steps=1, hidden=4, epochs=2, holdout=0.25, grid_rows=3)
    result = run_images_benchmark(paintings, photos, out, cfg)
    frame = pd.read_csv(out / "results.csv")
    assert {"held-out bits/dim", "Frechet distance", "round-trip max abs error [0,1] units", "training images/s (1 thread)"} <= set(frame["measure"])
    assert (frame.loc[frame["measure"] == "round-trip max abs error [0,1] units", "value"] <= 1e-4).all()
    assert (out / "grid_painting_to_photo.png").exists() and (out / "grid_photo_to_painting.png").exists()
    report = images_markdown(result, cfg, "flowad bench images --quick")
    assert report.startswith("Command: `flowad bench images --quick`")
