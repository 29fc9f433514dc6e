"""flowad.io.folders: the one listing rule of folder inputs (Dask scoring/adaptation, DDP training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowad.exceptions import InputError
from flowad.io.folders import data_files, is_data_path, parquet_row_groups


def test_files_are_listed_by_name_without_hidden_private_or_other_files(tmp_path: Path) -> None:
    for name in ("b.csv", "a.parquet", ".hidden.csv", "_SUCCESS.csv", "notes.md", "c.tsv"):
        (tmp_path / name).write_text("x\n1\n")
    assert [p.name for p in data_files(tmp_path)] == ["a.parquet", "b.csv", "c.tsv"]
    assert data_files(tmp_path / "b.csv") == [tmp_path / "b.csv"]
    assert is_data_path(tmp_path) and is_data_path(tmp_path / "b.csv") and not is_data_path(tmp_path / "notes.md")


@pytest.mark.parametrize(
    ("name", "match"),
    [("notes.md", "is not a Parquet"), ("missing", "neither a folder"), ("empty", "holds no Parquet")],
)
def test_unusable_paths_are_refused_in_words(tmp_path: Path, name: str, match: str) -> None:
    (tmp_path / "notes.md").write_text("x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=match):
        data_files(tmp_path / name)


def test_row_groups_come_from_the_footer_and_empty_groups_are_skipped(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    with pq.ParquetWriter(path, pa.schema([("x", pa.float64())])) as writer:
        for n in (3, 0, 5):
            writer.write_table(pa.Table.from_pandas(pd.DataFrame({"x": np.arange(n, dtype=float)}), preserve_index=False))
    assert [n for _, n in parquet_row_groups(path)] == [3, 5]
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="Parquet footer"):
        parquet_row_groups(tmp_path / "bad.parquet")
