"""The event and result formats, and the decode/validate step that turns Kafka bytes into events.

An event is a JSON object with `event_id` (a non-empty string), an optional `event_time`
(ISO 8601 with a UTC offset), and the model's input fields. Which input fields are required, and
their types, comes from the model signature (`InputContract.from_signature`). Other fields are
ignored.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from streamscore.errors import StreamscoreError

EVENT_ID = "event_id"
EVENT_TIME = "event_time"


class Reason(StrEnum):
    """Reason an event went to the dead-letter topic, from a bounded set used as a metric label."""

    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    INVALID_JSON = "invalid_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    SCORING_FAILED = "scoring_failed"


class InvalidEventError(StreamscoreError):
    """An event that cannot be scored; `reason` is the dead-letter reason."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# Python types accepted for each MLflow column type. bool is a subclass of int, so it is
# rejected separately for numeric columns.
_ACCEPTED_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "double": (int, float),
    "float": (int, float),
    "long": (int,),
    "integer": (int,),
    "boolean": (bool,),
}
# JSON names of the Python types that orjson decodes to.
_JSON_TYPE_NAMES: dict[type, str] = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}
_TYPE_WORDS = {
    "string": "a string",
    "double": "a number",
    "float": "a number",
    "long": "an integer",
    "integer": "an integer",
    "boolean": "true or false",
}


@dataclass(frozen=True, slots=True)
class Field:
    """One model input field: its name, MLflow column type and whether events must carry it."""

    name: str
    type: str
    required: bool = True


@dataclass(frozen=True, slots=True)
class Event:
    """A decoded, valid event: its id, its time as sent and in epoch seconds, and its features."""

    event_id: str
    event_time: str | None
    event_time_s: float | None
    features: dict[str, Any]


@dataclass(frozen=True)
class InputContract:
    """The fields an event must carry for one model, and the decode/validate step for them."""

    fields: tuple[Field, ...]
    max_event_bytes: int = 100_000

    @classmethod
    def from_signature(cls, signature: Any, max_event_bytes: int) -> InputContract:
        """Build the contract from an MLflow `ModelSignature` with named input columns.

        Raises:
            StreamscoreError: the signature has no named columns or a column type events
                cannot carry as JSON.
        """
        if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
            raise StreamscoreError("the model signature has no named input columns")
        fields = []
        for column in signature.inputs.inputs:
            type_name = str(getattr(column.type, "name", column.type))
            if type_name not in _ACCEPTED_TYPES:
                raise StreamscoreError(
                    f"input column {column.name!r} has type {type_name!r}, which events cannot "
                    f"carry; supported: {', '.join(_ACCEPTED_TYPES)}"
                )
            fields.append(Field(column.name, type_name, column.required))
        return cls(tuple(fields), max_event_bytes)

    @property
    def names(self) -> list[str]:
        """Names of the input fields, in signature order."""
        return [field.name for field in self.fields]

    def decode(self, value: bytes | None) -> Event:
        """Decode and validate one Kafka message value.

        Raises:
            InvalidEventError: the value is not a valid event; its reason names why.
        """
        return self.validate(_parse(value, self.max_event_bytes))

    def validate(self, document: Mapping[str, Any]) -> Event:
        """Validate an already parsed event, e.g. a row of a file being scored.

        Raises:
            InvalidEventError: a field is missing or has the wrong type; its reason names why.
        """
        event_id = document.get(EVENT_ID)
        if event_id is None:
            raise InvalidEventError(Reason.MISSING_FIELD, f"missing required field {EVENT_ID!r}")
        if not isinstance(event_id, str) or not event_id:
            raise InvalidEventError(
                Reason.WRONG_TYPE, f"expected a non-empty string for {EVENT_ID!r}, got {event_id!r}"
            )
        features = {field.name: _check_field(field, document) for field in self.fields}
        event_time = document.get(EVENT_TIME)
        return Event(event_id, event_time, _event_time_s(event_time), features)


def coerce_text(field: Field, text: str | None) -> Any:
    """Convert a CSV or TSV cell to the field's type; an empty cell is a missing value.

    Raises:
        InvalidEventError: the cell cannot be read as the field's type.
    """
    if text is None or text == "":
        return None
    try:
        if field.type in ("double", "float"):
            return float(text)
        if field.type in ("long", "integer"):
            return int(text)
    except ValueError as exc:
        detail = f"expected {_TYPE_WORDS[field.type]} for {field.name!r}, got {_preview(text)}"
        raise InvalidEventError(Reason.WRONG_TYPE, detail) from exc
    if field.type == "boolean":
        lowered = text.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        detail = f"expected true or false for {field.name!r}, got {_preview(text)}"
        raise InvalidEventError(Reason.WRONG_TYPE, detail)
    return text


def _parse(value: bytes | None, max_event_bytes: int) -> Mapping[str, Any]:
    if value is None:
        raise InvalidEventError(Reason.INVALID_JSON, "the message has no value")
    if len(value) > max_event_bytes:
        raise InvalidEventError(
            Reason.TOO_LARGE,
            f"the event is {len(value)} bytes, over the limit of {max_event_bytes} bytes",
        )
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as utf8_exc:
            detail = f"the event is not UTF-8: {utf8_exc.reason} at byte {utf8_exc.start}"
            raise InvalidEventError(Reason.NOT_UTF8, detail) from utf8_exc
        raise InvalidEventError(Reason.INVALID_JSON, f"the event is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidEventError(
            Reason.NOT_OBJECT, f"expected a JSON object, got {_JSON_TYPE_NAMES[type(document)]}"
        )
    return document


def _check_field(field: Field, document: Mapping[str, Any]) -> Any:
    value = document.get(field.name)
    if value is None:
        if field.required:
            raise InvalidEventError(Reason.MISSING_FIELD, f"missing required field {field.name!r}")
        return None
    accepted = _ACCEPTED_TYPES[field.type]
    is_bool_for_number = isinstance(value, bool) and field.type != "boolean"
    if not isinstance(value, accepted) or is_bool_for_number:
        raise InvalidEventError(
            Reason.WRONG_TYPE,
            f"expected {_TYPE_WORDS[field.type]} for {field.name!r}, got {_preview(value)}",
        )
    return value


def _event_time_s(value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str):
        detail = f"expected an ISO 8601 string for {EVENT_TIME!r}, got {_preview(value)}"
        raise InvalidEventError(Reason.WRONG_TYPE, detail)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        detail = f"expected an ISO 8601 time for {EVENT_TIME!r}, got {_preview(value)}"
        raise InvalidEventError(Reason.INVALID_VALUE, detail) from exc
    if moment.tzinfo is None:
        raise InvalidEventError(
            Reason.INVALID_VALUE, f"{EVENT_TIME!r} has no UTC offset: {_preview(value)}"
        )
    return moment.timestamp()


def _preview(value: Any, limit: int = 40) -> str:
    """Show a bad value in an error message, shortened so a payload never floods the log."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def new_event_id() -> str:
    """Return a random event id."""
    return uuid.uuid4().hex


def format_time(moment: datetime | None = None) -> str:
    """Format a moment (default now) as ISO 8601 in UTC with microseconds."""
    return (moment or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")


def encode_event(event_id: str, fields: Mapping[str, Any], event_time: str | None = None) -> bytes:
    """Encode one event as JSON bytes, stamping the current time if none is given."""
    document = {EVENT_ID: event_id, EVENT_TIME: event_time or format_time(), **fields}
    return orjson.dumps(document)
