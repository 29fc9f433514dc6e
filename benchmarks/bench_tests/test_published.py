"""The one reader of the shipped published tables returns what each file holds, parsed right."""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np
import pytest
from flowad_bench.published import PUBLISHED_TABLES, published_source, published_table
from flowad_bench.report import published_auc
from flowad_bench.report import published_source as odds_source

from flowad.exceptions import InputError


def _raw(name: str) -> tuple[list[str], list[dict[str, str]]]:
    """Comment lines and rows of a shipped table, read with the csv module (not the reader under test)."""
    text = resources.files("flowad_bench").joinpath("data", name).read_text(encoding="utf-8")
    comments = [ln for ln in text.splitlines() if ln.startswith("#")]
    rows = list(csv.DictReader(ln for ln in text.splitlines() if ln and not ln.startswith("#")))
    return comments, rows


@pytest.mark.parametrize("name", PUBLISHED_TABLES)
def test_table_is_the_file_parsed(name: str) -> None:
    _, rows = _raw(name)
    frame = published_table(name)
    assert rows and list(frame.columns) == list(rows[0])
    assert len(frame) == len(rows)
    for i, row in enumerate(rows):
        for column, text in row.items():
            cell = frame[column].iloc[i]
            if text == "":
                assert np.isnan(cell)
            elif column in ("experiment", "method", "dataset"):
                assert cell == text
            else:
                assert cell == float(text)  # exactly the float the text spells


@pytest.mark.parametrize("name", PUBLISHED_TABLES)
def test_source_is_the_comment_lines_and_says_published(name: str) -> None:
    comments, _ = _raw(name)
    source = published_source(name)
    assert "PUBLISHED" in source.upper() and "not" in source  # "published ..., not produced / computed by flowad"
    for line in comments:
        assert line.lstrip("# ").strip() in source


def test_unknown_table_is_refused_with_the_list() -> None:
    with pytest.raises(InputError, match="robustrealnvp_published.csv"):
        published_table("nope.csv")


def test_odds_report_reads_through_the_same_reader() -> None:
    auc = published_auc()
    frame = published_table("robustrealnvp_published.csv").set_index("dataset")
    assert auc.index.name == "dataset" and "in_study_mean" not in auc
    assert auc.equals(frame[auc.columns])
    assert odds_source() == published_source("robustrealnvp_published.csv")
