"""Read rows from TSV, CSV or JSON Lines files, one dict per row, without loading the whole file.

CSV and TSV files start with a header line unless the caller gives the column names. TSV is read
with quoting off (`csv.QUOTE_NONE`), because free text such as SMS messages contains quote
characters that are part of the text. A JSON Lines file contains one JSON object per line.
Blank lines are skipped in every format.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Literal

import orjson

from streamscore.errors import InputFileError

Format = Literal["tsv", "csv", "jsonl"]
FORMATS: tuple[Format, ...] = ("tsv", "csv", "jsonl")
Row = dict[str, Any]

_EXTENSIONS: dict[str, Format] = {
    ".tsv": "tsv",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def detect_format(path: Path, file_format: str | None = None) -> Format:
    """Return the file format: `file_format` when given, else the one its extension names.

    Raises:
        InputFileError: the format is unknown, or not given and the extension names none.
    """
    if file_format is not None:
        if file_format not in FORMATS:
            raise InputFileError(f"unknown format {file_format!r}, expected tsv, csv or jsonl")
        return file_format  # type: ignore[return-value]
    detected = _EXTENSIONS.get(path.suffix.lower())
    if detected is None:
        raise InputFileError(
            f"{path}: cannot detect the format from the extension {path.suffix!r}. "
            f"Pass the format (tsv, csv or jsonl) or rename the file."
        )
    return detected


def read_rows(
    path: Path,
    *,
    file_format: str | None = None,
    columns: Sequence[str] | None = None,
    fields: Sequence[str] | None = None,
) -> Iterator[Row]:
    """Yield the rows of a file as dicts, reading one line at a time.

    Args:
        path: the input file.
        file_format: `tsv`, `csv` or `jsonl` (default: from the file extension).
        columns: names of the CSV or TSV columns, for a file without a header line.
        fields: names every row must contain; rows are returned whole, these are only checked.

    Raises:
        InputFileError: the file cannot be opened or a line is invalid; the message names the
            file, the line number and the problem.
    """
    detected = detect_format(path, file_format)
    if columns is not None and detected == "jsonl":
        raise InputFileError(f"{path}: column names apply to CSV and TSV files, not JSON Lines")
    with _open(path) as handle:
        lines = _decoded_lines(path, handle)
        if detected == "jsonl":
            yield from _jsonl_rows(path, lines, fields or ())
        else:
            yield from _delimited_rows(path, lines, detected, columns, fields or ())


def count_rows(path: Path, *, file_format: str | None = None, has_header: bool = True) -> int:
    """Count the rows of a file by counting its non-blank lines, for a progress total.

    The count is exact for TSV and JSON Lines. For CSV with a quoted field that spans lines it is
    higher than the number of rows.

    Raises:
        InputFileError: the file cannot be opened.
    """
    detected = detect_format(path, file_format)
    count = 0
    with _open(path) as handle:
        for line in handle:
            if line.strip():
                count += 1
    if detected != "jsonl" and has_header and count > 0:
        count -= 1
    return count


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except FileNotFoundError as exc:
        raise InputFileError(
            f"input file {str(path)!r} not found; check the path, which is relative to the "
            f"directory the command runs in"
        ) from exc
    except OSError as exc:
        raise InputFileError(f"cannot read input file {str(path)!r}: {exc.strerror}") from exc


def _line_error(path: Path, line_number: int, problem: str) -> InputFileError:
    return InputFileError(f"{path}: line {line_number}: {problem}")


def _decoded_lines(path: Path, handle: BinaryIO) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) pairs, decoding each line as UTF-8 on its own.

    Decoding line by line, not through a buffered text stream, puts a decode error on the line
    that contains the bad byte.
    """
    for line_number, raw in enumerate(handle, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _line_error(
                path, line_number, f"invalid UTF-8 at byte {exc.start} of the line: {exc.reason}"
            ) from exc
        if line_number == 1:
            text = text.removeprefix("\ufeff")
        yield line_number, text


def _jsonl_rows(
    path: Path, lines: Iterable[tuple[int, str]], fields: Sequence[str]
) -> Iterator[Row]:
    for line_number, text in lines:
        if not text.strip():
            continue
        try:
            row = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise _line_error(path, line_number, f"invalid JSON: {exc}") from exc
        if not isinstance(row, dict):
            raise _line_error(
                path, line_number, f"expected a JSON object, got {type(row).__name__}"
            )
        missing = [name for name in fields if name not in row]
        if missing:
            raise _line_error(path, line_number, f"missing field {missing[0]!r}")
        yield row


def _delimited_rows(
    path: Path,
    lines: Iterable[tuple[int, str]],
    file_format: Format,
    columns: Sequence[str] | None,
    fields: Sequence[str],
) -> Iterator[Row]:
    # The csv reader pulls lines from this generator, so `current` is the number of the last
    # line it consumed, which is the last line of the row it returns.
    current = 0

    def texts() -> Iterator[str]:
        nonlocal current
        for line_number, text in lines:
            current = line_number
            yield text

    if file_format == "tsv":
        records = csv.reader(texts(), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        records = csv.reader(texts())
    try:
        if columns is not None:
            names, source = list(columns), "the given columns"
        else:
            names = _header(path, records)
            source = f"the header (line {current})"
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise InputFileError(f"{path}: column {repeated[0]!r} appears twice in {source}")
        _check_fields(path, names, fields, source)
        for values in records:
            if not values:
                continue
            if len(values) != len(names):
                raise _line_error(path, current, f"expected {len(names)} fields, got {len(values)}")
            yield dict(zip(names, values, strict=True))
    except csv.Error as exc:
        raise _line_error(path, current, f"malformed {file_format.upper()}: {exc}") from exc


def _header(path: Path, records: Iterator[list[str]]) -> list[str]:
    for values in records:
        if values:
            return values
    raise InputFileError(f"{path}: the file is empty, expected a header line")


def _check_fields(path: Path, names: Sequence[str], fields: Sequence[str], source: str) -> None:
    unknown = [name for name in fields if name not in names]
    if unknown:
        raise InputFileError(
            f"{path}: unknown field {unknown[0]!r}, expected one of the columns in {source}: "
            f"{', '.join(names)}"
        )
