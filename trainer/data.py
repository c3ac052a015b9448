"""Read the labelled training data: a TSV or CSV file without a header line."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from pathlib import Path

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
    """Read `training.data_path` into a DataFrame with one string column per `training.columns`.

    Raises:
        InputFileError: the file is missing, unreadable, not UTF-8 or empty, or its extension is
            not .tsv or .csv. A row has the wrong number of columns or an empty label. The file
            has fewer than two labels or none equal to `positive_label`. Or the settings name a
            label or text column that is not in `columns`.
    """
    path = training.data_path
    _validate_columns(training)

    label_index = training.columns.index(training.label_column)
    rows = list(_read_rows(path, len(training.columns), label_index))
    if not rows:
        raise InputFileError(f"training data {path} is empty: expected one labelled row per line")
    frame = pd.DataFrame(rows, columns=training.columns, dtype=str)

    _validate_labels(frame, training)
    logger.info(
        "training data read path=%s rows=%d labels=%s",
        path,
        len(frame),
        frame[training.label_column].value_counts().to_dict(),
    )
    return frame


def _validate_columns(training: TrainingSettings) -> None:
    path = training.data_path
    columns = training.columns
    if len(set(columns)) != len(columns):
        raise InputFileError(f"training data {path}: duplicate names in columns {columns}")
    for role, name in (("label", training.label_column), ("text", training.text_column)):
        if name not in columns:
            raise InputFileError(
                f"training data {path}: {role} column {name!r} is not in columns {columns}"
            )
    if training.label_column == training.text_column:
        raise InputFileError(
            f"training data {path}: label column and text column are both {training.label_column!r}"
        )


def _read_rows(path: Path, column_count: int, label_index: int) -> Iterator[list[str]]:
    """Yield the rows of `path`, checking that each has `column_count` fields and a label."""
    dialect = _DIALECTS.get(path.suffix.lower())
    if dialect is None:
        raise InputFileError(
            f"training data {path}: unsupported extension {path.suffix!r}, expected .tsv or .csv"
        )
    try:
        with path.open(encoding="utf-8", newline="") as file:
            reader = csv.reader(file, dialect=dialect, strict=True)
            for row in reader:
                if len(row) != column_count:
                    raise InputFileError(
                        f"training data {path}: expected {column_count} columns at line "
                        f"{reader.line_num}, got {len(row)}"
                    )
                if not row[label_index].strip():
                    raise InputFileError(
                        f"training data {path}: empty label at line {reader.line_num}"
                    )
                yield row
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
