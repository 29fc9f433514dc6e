"""Reading image folders: shapes, resizing, and clear errors for bad folders and files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowad.exceptions import InputError
from flowad.features.images import holdout_split, read_image_folder, read_images, write_image_grid
from tests.images._data import domain_images, write_folder


def test_reads_sorted_files_as_nchw_uint8(tmp_path: Path) -> None:
    imgs = domain_images("warm", 3, 0, size=16)
    folder = write_folder(tmp_path / "f", imgs)
    (folder / "notes.txt").write_text("not an image")
    X, names = read_image_folder(folder, size=8)
    assert X.shape == (3, 3, 8, 8) and X.dtype == np.uint8
    assert names == ["img 000.png", "img 001.png", "img 002.png"]
    same, _ = read_image_folder(folder, size=16)
    np.testing.assert_array_equal(same, imgs)  # no resize at the native size


def test_non_square_images_are_centre_cropped(tmp_path: Path) -> None:
    arr = np.zeros((8, 16, 3), dtype=np.uint8)
    arr[:, 4:12] = 200  # the centre square is bright, the sides dark
    Image.fromarray(arr).save(tmp_path / "wide.png")
    X = read_images([tmp_path / "wide.png"], size=8)
    assert X.min() == 200


def test_missing_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_image_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no image files"):
        read_image_folder(tmp_path / "empty")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(InputError, match="is not a folder"):
        read_image_folder(tmp_path / "file.png")


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "f", domain_images("warm", 2, 0))
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(InputError, match="Cannot read image .*broken.jpg"):
        read_image_folder(folder, size=8)


def test_wrong_channel_count_is_refused_unless_converted(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "f", domain_images("warm", 2, 0))
    Image.fromarray(np.full((8, 8), 90, dtype=np.uint8)).save(folder / "gray.png")
    with pytest.raises(InputError, match="gray.png.* 1 channel\\(s\\) \\(mode L\\), expected 3"):
        read_image_folder(folder, size=8)
    X, _ = read_image_folder(folder, size=8, convert=True)
    assert X.shape == (3, 3, 8, 8) and (X[0] == 90).all()
    G, _ = read_image_folder(folder, size=8, channels=1, convert=True)
    assert G.shape == (3, 1, 8, 8)


def test_too_small_images_are_refused(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "f", domain_images("warm", 1, 0, size=8))
    with pytest.raises(InputError, match="is 8x8, smaller than the requested 32x32"):
        read_image_folder(folder, size=32)


def test_grid_layout(tmp_path: Path) -> None:
    a, b = domain_images("warm", 3, 0), domain_images("cool", 3, 1)
    path = write_image_grid([a, b], tmp_path / "g.png", pad=2)
    grid = np.asarray(Image.open(path))
    assert grid.shape == (3 * 10 + 2, 2 * 10 + 2, 3)
    np.testing.assert_array_equal(grid[2:10, 2:10], a[0].transpose(1, 2, 0))  # inputs left
    np.testing.assert_array_equal(grid[2:10, 12:20], b[0].transpose(1, 2, 0))  # outputs right
    big = np.asarray(Image.open(write_image_grid([a, b], tmp_path / "big.png", pad=2, scale=3)))
    np.testing.assert_array_equal(big[::3, ::3], grid)
    with pytest.raises(InputError, match="one shape"):
        write_image_grid([a, b[:2]], tmp_path / "h.png")


def test_holdout_split_is_seeded_and_disjoint() -> None:
    train, held = holdout_split(10, 0.3, 0)
    assert held.size == 3 and train.size == 7 and not set(train) & set(held)
    np.testing.assert_array_equal(holdout_split(10, 0.3, 0)[1], held)
    assert holdout_split(5, 0.0, 0)[1].size == 0
    with pytest.raises(InputError, match="in \\[0, 1\\)"):
        holdout_split(5, 1.0, 0)
