"""``flowad image fit``, ``score`` and ``translate``: folders of images in, a Glow model with
per-domain AdaBN, per-image bits/dim and translation grids out."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from flowad.cli import app
from flowad.cli._common import check_output, progress, user_errors
from flowad.cli._model import _parse_set
from flowad.exceptions import InputError

image_app = typer.Typer(
    help="Images: fit a Glow flow with per-domain AdaBN on folders (one per domain), score images in bits/dim, translate between domains.",
    no_args_is_help=True,
)
app.add_typer(image_app, name="image")


def _domain_folders(specs: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep or not name.strip() or not folder:
            raise InputError(f"Give each domain as NAME=FOLDER, e.g. photo=data/photos; got {spec!r}.")
        if name.strip() in out:
            raise InputError(f"Domain {name.strip()!r} is given twice.")
        out[name.strip()] = Path(folder)
    return out


@image_app.command("fit")
@user_errors
def fit(
    domains: list[str] = typer.Argument(..., metavar="NAME=FOLDER...", help="One or more domains, each NAME=FOLDER of images (unpaired)."),
    output: Path = typer.Option(..., "--output", "-o", help="Model file to write."),
    size: int = typer.Option(32, help="Images are centre-cropped to a square and resized to SIZE x SIZE."),
    grayscale: bool = typer.Option(False, help="Model grayscale images (1 channel) instead of RGB."),
    convert: bool = typer.Option(False, help="Convert images of another channel layout (grayscale, RGBA, ...) instead of refusing them."),
    holdout: float = typer.Option(0.0, help="Fraction of each domain's images held out of training (seeded); their bits/dim under every domain is printed."),
    epochs: int = typer.Option(None, help="Training epochs (default: ImageAdaFlow's)."),
    levels: int = typer.Option(None, help="Scales of the multi-scale flow (SIZE must be divisible by 2**levels)."),
    steps: int = typer.Option(None, help="Glow steps per level."),
    hidden: int = typer.Option(None, help="Hidden channels of the coupling networks."),
    seed: int = typer.Option(0, help="Random seed (initialization, minibatches, dequantization, held-out split)."),
    set_: list[str] = typer.Option([], "--set", help="Any other ImageAdaFlow hyper-parameter as KEY=VALUE (JSON values)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Train ImageAdaFlow on images of several domains (one folder each)."""
    import numpy as np

    from flowad.detectors._image import ImageAdaFlow
    from flowad.features.images import holdout_split, read_image_folder

    check_output(output)
    folders = _domain_folders(domains)
    params = {"random_state": seed, **_parse_set(set_)}
    for key, value in (("epochs", epochs), ("levels", levels), ("steps", steps), ("hidden", hidden)):
        if value is not None:
            params[key] = value
    valid = set(ImageAdaFlow().get_params())
    unknown = sorted(set(params) - valid)
    if unknown:
        raise InputError(f"Unknown hyper-parameter(s) {unknown} for image-adaflow; valid: {sorted(valid)}.")
    train, held, labels = [], {}, []
    for i, (name, folder) in enumerate(folders.items()):
        images, _ = read_image_folder(folder, size=size, channels=1 if grayscale else 3, convert=convert)
        keep, out = holdout_split(images.shape[0], holdout, seed + i)
        train.append(images[keep])
        labels += [name] * keep.size
        if out.size:
            held[name] = images[out]
    det = ImageAdaFlow(**params)
    with progress(not quiet, "fit image-adaflow"):
        det.fit(np.concatenate(train), domains=labels)
    det.save(output)
    if not quiet:
        counts = ", ".join(f"{d} ({det.domain_counts_[d]} images)" for d in det.domains_)
        typer.echo(f"Trained ImageAdaFlow on {det.image_shape_} images; domains: {counts}; final training loss {det.history_[-1]:.3f} bits/dim; wrote {output}")
        for name, images in held.items():
            bpd = ", ".join(f"{d}: {det.bits_per_dim(images, d).mean():.3f}" for d in det.domains_)
            typer.echo(f"held-out {name} ({images.shape[0]} images), mean bits/dim under each domain's statistics: {bpd}")


def _load(model_file: Path):  # noqa: ANN202
    from flowad.detectors import load
    from flowad.detectors._image import ImageAdaFlow

    det = load(model_file)
    if not isinstance(det, ImageAdaFlow):
        raise InputError(f"{str(model_file)!r} holds a {type(det).__name__} model, not an image model; write one with flowad image fit.")
    return det


def _read(det, folder: Path, convert: bool):  # noqa: ANN001, ANN202
    from flowad.features.images import read_image_folder

    c, h, w = det.image_shape_
    if h != w:
        raise InputError(f"The model's images are {h}x{w}; image folders are read as squares.")
    return read_image_folder(folder, size=h, channels=c, convert=convert)


@image_app.command("score")
@user_errors
def score(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="Model file written by flowad image fit."),
    folder: Path = typer.Argument(..., help="Folder of images to score."),
    output: Path = typer.Option(..., "--output", "-o", help="Scores file (.csv, .parquet)."),
    domain: list[str] = typer.Option([], help="Score under this domain's statistics (repeatable; default: every domain)."),
    convert: bool = typer.Option(False, help="Convert images of another channel layout instead of refusing them."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Write one row per image and domain: file, domain, bits/dim, anomaly score (NLL in nats), 0/1 label."""
    import numpy as np
    import pandas as pd

    from flowad.io.tables import write_table

    check_output(output)
    det = _load(model_file)
    images, names = _read(det, folder, convert)
    frames = []
    for name in domain or det.domains_:
        nll = det.decision_function(images, name)
        frames.append(pd.DataFrame({
            "file": names,
            "domain": det.domains_[det._index(name)],
            "bits_per_dim": nll / (det.n_features_in_ * math.log(2.0)),
            "anomaly_score": nll,
            "label": (nll > det.thresholds_[det.domains_[det._index(name)]]).astype(np.int64),
        }))
    table = pd.concat(frames, ignore_index=True)
    write_table(table, output)
    if not quiet:
        means = json.dumps({d: round(float(g.mean()), 4) for d, g in table.groupby("domain")["bits_per_dim"]})
        typer.echo(f"Scored {len(names)} images; mean bits/dim per domain {means}; wrote {output}")


@image_app.command("translate")
@user_errors
def translate(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="Model file written by flowad image fit."),
    folder: Path = typer.Argument(..., help="Folder of images of the source domain."),
    source: str = typer.Option(..., help="Domain the images come from."),
    target: str = typer.Option(..., help="Domain to translate them to."),
    output: Path = typer.Option(..., "--output", "-o", help="PNG grid to write: inputs left, translations right, one row per image."),
    limit: int = typer.Option(8, help="Images in the grid (the first ones by file name; 0 = all)."),
    scale: int = typer.Option(1, help="Enlarge the grid this many times (nearest neighbour)."),
    save_folder: Path = typer.Option(None, help="Also write every translated image here as PNG (same file names)."),
    convert: bool = typer.Option(False, help="Convert images of another channel layout instead of refusing them."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Translate images from SOURCE to TARGET (forward with SOURCE's statistics, back with TARGET's)."""
    import numpy as np

    from flowad.features.images import write_image_grid

    if limit < 0:
        raise InputError(f"--limit must be >= 0, got {limit}.")
    if scale < 1:
        raise InputError(f"--scale must be >= 1, got {scale}.")
    if output.suffix.lower() != ".png":
        raise InputError(f"--output must be a .png file, got {str(output)!r}.")
    check_output(output)
    if save_folder is not None and not save_folder.is_dir():
        raise InputError(f"--save-folder {str(save_folder)!r} is not an existing folder.")
    det = _load(model_file)
    images, names = _read(det, folder, convert)
    if limit and save_folder is None:
        images, names = images[:limit], names[:limit]
    moved = det.translate(images, source=source, target=target)
    shown = slice(None) if not limit else slice(0, limit)
    write_image_grid([images[shown], moved[shown]], output, scale=scale)
    if save_folder is not None:
        from PIL import Image

        pixels = np.clip(np.rint(moved), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        for name, img in zip(names, pixels, strict=True):
            Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(save_folder / (Path(name).stem + ".png"))
    if not quiet:
        typer.echo(f"Translated {len(names)} images from {source!r} to {target!r}; wrote {output}" + (f" and {save_folder}" if save_folder else ""))
