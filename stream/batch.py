"""Batch scoring: score a file with the same scorer and input contract as the worker.

Results are written as JSON Lines, one result document per valid row, exactly as the worker
publishes them. Rows that fail validation or scoring go to a second JSON Lines file beside the
output, `<output stem>.rejected.jsonl`, with their row number, reason and error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any

import orjson

from producer.reader import detect_format, read_rows
from stream.scorer import Scorer
from streamscore.errors import InputFileError
from streamscore.events import EVENT_ID, Event, InvalidEventError, coerce_text

logger = logging.getLogger(__name__)


@dataclass
class BatchReport:
    """Counts of one scored file and where its outputs went."""

    output: Path
    rejected_output: Path
    scored: int = 0
    rejected: int = 0


def rejected_path(output: Path) -> Path:
    """Return the file that receives the rows of `output` that could not be scored."""
    return output.with_name(f"{output.stem}.rejected.jsonl")


def score_file(
    scorer: Scorer,
    source: Path,
    output: Path,
    *,
    batch_size: int,
    file_format: str | None = None,
    columns: Sequence[str] | None = None,
    id_field: str | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> BatchReport:
    """Score every row of `source` in batches of `batch_size` and write the results.

    Args:
        scorer: the model and input contract, as the worker loads them.
        source: a TSV, CSV or JSON Lines file with the model's input fields.
        output: the JSON Lines file of results; it is replaced.
        batch_size: rows per `predict_proba` call.
        file_format: `tsv`, `csv` or `jsonl`; default from the extension.
        columns: column names of a CSV or TSV file without a header line.
        id_field: row field with the event id; default `row-N`, N being the row's number.
        on_batch: called with the number of rows after each batch, e.g. to show progress.

    Raises:
        InputFileError: the file cannot be read, or the output cannot be written.
    """
    is_text = detect_format(source, file_format) != "jsonl"
    rows = read_rows(source, file_format=file_format, columns=columns)
    report = BatchReport(output, rejected_path(output))
    try:
        with output.open("wb") as results, report.rejected_output.open("wb") as rejected:
            for chunk in _chunks(enumerate(rows, start=1), batch_size):
                _score_chunk(scorer, chunk, is_text, id_field, results, rejected, report)
                if on_batch is not None:
                    on_batch(len(chunk))
    except OSError as exc:
        raise InputFileError(f"cannot write {exc.filename}: {exc.strerror}") from exc
    logger.info(
        "file scored source=%s scored=%d rejected=%d", source, report.scored, report.rejected
    )
    return report


def _chunks(
    numbered_rows: Iterator[tuple[int, Mapping[str, Any]]], size: int
) -> Iterator[list[tuple[int, Mapping[str, Any]]]]:
    while chunk := list(islice(numbered_rows, size)):
        yield chunk


def _score_chunk(
    scorer: Scorer,
    chunk: list[tuple[int, Mapping[str, Any]]],
    is_text: bool,
    id_field: str | None,
    results: IO[bytes],
    rejected: IO[bytes],
    report: BatchReport,
) -> None:
    valid: list[tuple[int, Event]] = []
    for number, row in chunk:
        try:
            valid.append((number, _event(scorer, row, number, is_text, id_field)))
        except InvalidEventError as exc:
            _reject(rejected, report, number, row.get(id_field or EVENT_ID), exc.reason, exc.detail)
    if not valid:
        return
    scored = scorer.score([event for _, event in valid])
    for index, (number, event) in enumerate(valid):
        prediction = scored.predictions[index]
        if prediction is None:
            _reject(
                rejected, report, number, event.event_id, "scoring_failed", scored.failures[index]
            )
            continue
        results.write(
            orjson.dumps(scorer.result(event, prediction), option=orjson.OPT_APPEND_NEWLINE)
        )
        report.scored += 1


def _event(
    scorer: Scorer, row: Mapping[str, Any], number: int, is_text: bool, id_field: str | None
) -> Event:
    """Validate one row as an event, converting CSV and TSV cells to the signature's types."""
    document = dict(row)
    if is_text:
        for field in scorer.contract.fields:
            document[field.name] = coerce_text(field, row.get(field.name))
    if id_field is not None:
        document[EVENT_ID] = str(row.get(id_field, ""))
    else:
        document.setdefault(EVENT_ID, f"row-{number}")
    return scorer.contract.validate(document)


def _reject(
    rejected: IO[bytes],
    report: BatchReport,
    number: int,
    event_id: Any,
    reason: str,
    detail: str,
) -> None:
    record = {"row": number, "event_id": event_id, "reason": str(reason), "error": detail}
    rejected.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE, default=str))
    report.rejected += 1
