"""Generate events that fit a model's input contract, with malformed events mixed in on request.

The generated load of `streamscore publish --generate N` needs no data file. A string field
named like `training.text_column` gets messages drawn from the training data, so the model sees
realistic text. Other fields get random values of their type.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from producer.publisher import EncodedEvent
from producer.reader import read_rows
from streamscore.errors import InputFileError
from streamscore.events import (
    EVENT_ID,
    EVENT_TIME,
    Field,
    InputContract,
    Reason,
    encode_event,
    format_time,
)
from streamscore.settings import TrainingSettings

# Ranges of generated numbers, because a signature gives types but no value ranges.
_NUMBER_RANGE = (0.0, 100.0)
_INTEGER_RANGE = (0, 1000)


# The reasons a malformed event can be generated for: every dead-letter reason except a
# scoring failure, which depends on the model rather than on the event.
INVALID_KINDS: tuple[Reason, ...] = tuple(r for r in Reason if r is not Reason.SCORING_FAILED)


@dataclass
class EventGenerator:
    """Yield `count` events for one input contract; `invalid_fraction` of them malformed.

    The malformed events are spread evenly over the stream and take the kinds of `INVALID_KINDS`
    in turn, so that with at least 7 of them every kind occurs.

    Args:
        contract: the model's input fields and the worker's maximum event size.
        count: the number of events to yield.
        texts: messages to draw string fields named `text_field` from.
        text_field: the field that gets messages from `texts`.
        invalid_fraction: the share of malformed events, from 0 to 1.
        seed: seed of the random choices, for repeatable load.
    """

    contract: InputContract
    count: int
    texts: Sequence[str] = ()
    text_field: str | None = None
    invalid_fraction: float = 0.0
    seed: int | None = None
    kinds: Sequence[Reason] = INVALID_KINDS

    def __iter__(self) -> Iterator[EncodedEvent]:
        rng = random.Random(self.seed)  # noqa: S311 - test load, not cryptography
        invalid_count = 0
        for index in range(self.count):
            event_id = f"generated-{index}-{rng.getrandbits(48):012x}"
            features = {spec.name: self._value(spec, rng) for spec in self.contract.fields}
            # Event i is malformed when the running count of malformed events, index times the
            # fraction, passes another whole number: floor(count * fraction) in all, evenly spaced.
            if int((index + 1) * self.invalid_fraction) > invalid_count:
                kind = self.kinds[invalid_count % len(self.kinds)]
                invalid_count += 1
                value = self._malformed(kind, event_id, features)
                yield event_id, value, {"invalid_kind": kind.value, **features}
            else:
                yield event_id, encode_event(event_id, features, format_time()), features

    def _value(self, spec: Field, rng: random.Random) -> Any:
        if spec.type == "string":
            if spec.name == self.text_field and self.texts:
                return rng.choice(self.texts)
            return f"{spec.name}-{rng.randrange(1_000_000)}"
        if spec.type in ("double", "float"):
            return round(rng.uniform(*_NUMBER_RANGE), 4)
        if spec.type in ("long", "integer"):
            return rng.randint(*_INTEGER_RANGE)
        return rng.random() < 0.5

    def _malformed(self, kind: Reason, event_id: str, features: dict[str, Any]) -> bytes:
        document: dict[str, Any] = {EVENT_ID: event_id, EVENT_TIME: format_time(), **features}
        if kind is Reason.NOT_UTF8:
            return b'{"event_id": "\xff\xfe not utf-8"}'
        if kind is Reason.INVALID_JSON:
            return b'{"event_id": "unterminated'
        if kind is Reason.NOT_OBJECT:
            return orjson.dumps([event_id, *features.values()])
        if kind is Reason.MISSING_FIELD:
            required = [spec.name for spec in self.contract.fields if spec.required]
            document.pop(required[0] if required else EVENT_ID)
        elif kind is Reason.WRONG_TYPE:
            first = self.contract.fields[0] if self.contract.fields else None
            name = first.name if first is not None else EVENT_ID
            document[name] = 12345 if first is None or first.type == "string" else "not a number"
        elif kind is Reason.INVALID_VALUE:
            document[EVENT_TIME] = "yesterday"
        else:
            document["padding"] = "x" * self.contract.max_event_bytes
        return orjson.dumps(document)


def read_training_texts(training: TrainingSettings) -> list[str]:
    """Read the non-empty messages of the training data's text column.

    Raises:
        InputFileError: the training data cannot be read; the message names the setting to fix.
    """
    path = Path(training.data_path)
    if not path.is_file():
        raise InputFileError(
            f"training data {path} not found, so no realistic messages can be generated; "
            f"set training.data_path to the file the model was trained on"
        )
    rows = read_rows(path, columns=training.columns, fields=[training.text_column])
    return [str(row[training.text_column]) for row in rows if row[training.text_column]]
