"""The generated payments data set: seeded, learnable and equal to the committed files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from trainer.datasets import COLUMNS, generate_transactions, write_transactions

REPO_DATA = Path(__file__).resolve().parents[2] / "data"


def test_generate_same_seed_same_rows() -> None:
    first = generate_transactions(rows=200, seed=7)
    second = generate_transactions(rows=200, seed=7)

    pd.testing.assert_frame_equal(first, second)


def test_generate_has_both_labels() -> None:
    frame = generate_transactions()

    assert list(frame.columns) == COLUMNS
    assert set(frame["label"]) == {"fraud", "ok"}
    assert 0.05 < (frame["label"] == "fraud").mean() < 0.3
    assert frame["hour"].between(0, 23).all()


def test_generate_matches_committed_files(tmp_path: Path) -> None:
    write_transactions(generate_transactions(), tmp_path / "t.csv", tmp_path / "t.jsonl")

    assert (tmp_path / "t.csv").read_bytes() == (REPO_DATA / "transactions.csv").read_bytes()
    assert (tmp_path / "t.jsonl").read_bytes() == (REPO_DATA / "transactions.jsonl").read_bytes()
