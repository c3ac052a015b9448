"""Read the labelled training data: a TSV or CSV file, with or without a header line."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from streamscore.errors import InputFileError
from streamscore.settings import TrainingSettings

logger = logging.getLogger(__name__)


class _LiteralTab(csv.excel_tab):
    """Tab-separated fields taken literally, because SMS texts contain unbalanced quotes."""

    quoting = csv.QUOTE_NONE


# A CSV field that contains a comma, a quote or a line break must be quoted (RFC 4180).
_DIALECTS: dict[str, type[csv.Dialect]] = {".tsv": _LiteralTab, ".csv": csv.excel}


def read_labelled_data(training: TrainingSettings) -> pd.DataFrame:
    """Read `training.data_path` into a DataFrame with one column per data column.

    The column names are `training.columns`, or the file's header line when that is None.
    Numeric feature columns are float64 and every other column is a string.

    Raises:
        InputFileError: the file is missing, unreadable, not UTF-8 or empty, or its extension is
            not .tsv or .csv. A row has the wrong number of columns or an empty label, or a
            numeric feature is not a finite number. The file has fewer than two labels or none
            equal to `positive_label`. Or the label or a feature column is not among the columns.
    """
    path = training.data_path
    rows = _read_rows(path)
    columns = training.columns
    if columns is None:
        _, columns = next(rows, (0, None))
        if columns is None:
            raise InputFileError(f"training data {path} is empty: expected a header line")
    _validate_columns(columns, training)

    label_index = columns.index(training.label_column)
    checked = list(_check_rows(path, rows, len(columns), label_index))
    if not checked:
        raise InputFileError(f"training data {path} is empty: expected one labelled row per line")
    line_numbers = [line_number for line_number, _ in checked]
    frame = pd.DataFrame([row for _, row in checked], columns=columns, dtype=str)
    for name in training.numeric_columns if training.pipeline == "tabular" else []:
        frame[name] = _to_numbers(frame[name], path, line_numbers)

    _validate_labels(frame, training)
    logger.info(
        "training data read path=%s rows=%d labels=%s",
        path,
        len(frame),
        frame[training.label_column].value_counts().to_dict(),
    )
    return frame


def _validate_columns(columns: list[str], training: TrainingSettings) -> None:
    path = training.data_path
    if len(set(columns)) != len(columns):
        raise InputFileError(f"training data {path}: duplicate names in columns {columns}")
    feature_role = "text" if training.pipeline == "text" else "feature"
    roles = [("label", training.label_column)]
    roles += [(feature_role, name) for name in training.feature_columns]
    for role, name in roles:
        if name not in columns:
            raise InputFileError(
                f"training data {path}: {role} column {name!r} is not in columns {columns}"
            )


def _to_numbers(column: pd.Series, path: Path, line_numbers: list[int]) -> pd.Series:
    """Convert a column of strings to float64, rejecting text, blanks, NaN and infinities."""
    numbers = pd.to_numeric(column.str.strip(), errors="coerce").astype("float64")
    is_invalid = ~np.isfinite(numbers.to_numpy())
    if is_invalid.any():
        position = int(is_invalid.argmax())
        raise InputFileError(
            f"training data {path}: expected a finite number in column {column.name!r} at line "
            f"{line_numbers[position]}, got {column.iloc[position]!r}"
        )
    return numbers


def _read_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield each row of `path` with the number of the line it ends on."""
    dialect = _DIALECTS.get(path.suffix.lower())
    if dialect is None:
        raise InputFileError(
            f"training data {path}: unsupported extension {path.suffix!r}, expected .tsv or .csv"
        )
    try:
        with path.open(encoding="utf-8", newline="") as file:
            reader = csv.reader(file, dialect=dialect, strict=True)
            for row in reader:
                yield reader.line_num, row
    except FileNotFoundError as exc:
        raise InputFileError(
            f"training data {path} not found: set training.data_path or --data to an existing file"
        ) from exc
    except UnicodeDecodeError as exc:
        bad_byte = exc.object[exc.start]
        raise InputFileError(
            f"training data {path} is not valid UTF-8: {exc.reason} at byte {bad_byte:#04x}"
        ) from exc
    except OSError as exc:
        raise InputFileError(f"cannot read training data {path}: {exc.strerror}") from exc
    except csv.Error as exc:
        raise InputFileError(f"training data {path}: malformed {path.suffix} file ({exc})") from exc


def _check_rows(
    path: Path, rows: Iterator[tuple[int, list[str]]], column_count: int, label_index: int
) -> Iterator[tuple[int, list[str]]]:
    """Yield `rows`, checking that each has `column_count` fields and a label."""
    for line_number, row in rows:
        if len(row) != column_count:
            raise InputFileError(
                f"training data {path}: expected {column_count} columns at line {line_number}, "
                f"got {len(row)}"
            )
        if not row[label_index].strip():
            raise InputFileError(f"training data {path}: empty label at line {line_number}")
        yield line_number, row


def _validate_labels(frame: pd.DataFrame, training: TrainingSettings) -> None:
    path = training.data_path
    classes = sorted(frame[training.label_column].unique())
    if len(classes) < 2:
        raise InputFileError(
            f"training data {path}: only one label {classes[0]!r} found, expected at least two"
        )
    if training.positive_label not in classes:
        raise InputFileError(
            f"training data {path}: positive label {training.positive_label!r} not found, "
            f"labels are {classes}"
        )
