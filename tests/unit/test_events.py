"""Decode and validate: every bad event gets a reason, no input raises anything else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamscore.events import (
    Field,
    InputContract,
    InvalidEventError,
    Reason,
    coerce_text,
    encode_event,
)

CONTRACT = InputContract(
    (
        Field("message", "string"),
        Field("amount", "double"),
        Field("count", "long"),
        Field("flag", "boolean", required=False),
    ),
    max_event_bytes=1_000,
)
GOOD = {"event_id": "e1", "message": "hi", "amount": 2.5, "count": 3}


def _decode(document: object) -> object:
    return CONTRACT.decode(json.dumps(document).encode())


def test_decode_valid_event_returns_features() -> None:
    event = CONTRACT.decode(encode_event("e1", {"message": "hi", "amount": 2, "count": 3}))

    assert event.event_id == "e1"
    assert event.features == {"message": "hi", "amount": 2, "count": 3, "flag": None}
    assert event.event_time is not None
    assert event.event_time_s is not None


def test_decode_ignores_extra_fields() -> None:
    event = _decode({**GOOD, "label": "spam"})

    assert "label" not in event.features


def test_decode_without_event_time_has_none() -> None:
    event = _decode(GOOD)

    assert event.event_time is None
    assert event.event_time_s is None


@pytest.mark.parametrize(
    ("value", "reason", "detail"),
    [
        (None, Reason.INVALID_JSON, "no value"),
        (b"\xff\xfe", Reason.NOT_UTF8, "not UTF-8"),
        (b"{oops", Reason.INVALID_JSON, "not JSON"),
        (b"[1]", Reason.NOT_OBJECT, "got an array"),
        (b"null", Reason.NOT_OBJECT, "got null"),
        (b'{"event_id": "e", "message": "\\ud800"}', Reason.INVALID_JSON, "not JSON"),
        (b'"text"', Reason.NOT_OBJECT, "got a string"),
        (b"x" * 1_001, Reason.TOO_LARGE, "1001 bytes, over the limit of 1000"),
    ],
)
def test_decode_malformed_bytes_rejected(value: bytes | None, reason: Reason, detail: str) -> None:
    with pytest.raises(InvalidEventError, match=detail) as caught:
        CONTRACT.decode(value)

    assert caught.value.reason is reason


@pytest.mark.parametrize(
    ("document", "reason", "detail"),
    [
        ({"message": "hi", "amount": 1, "count": 1}, Reason.MISSING_FIELD, "'event_id'"),
        ({**GOOD, "event_id": 7}, Reason.WRONG_TYPE, "non-empty string for 'event_id', got 7"),
        ({**GOOD, "event_id": ""}, Reason.WRONG_TYPE, "'event_id'"),
        ({"event_id": "e", "amount": 1, "count": 1}, Reason.MISSING_FIELD, "'message'"),
        ({**GOOD, "message": None}, Reason.MISSING_FIELD, "'message'"),
        ({**GOOD, "message": 5}, Reason.WRONG_TYPE, "a string for 'message', got 5"),
        ({**GOOD, "amount": "twelve"}, Reason.WRONG_TYPE, "a number for 'amount', got 'twelve'"),
        ({**GOOD, "amount": True}, Reason.WRONG_TYPE, "a number for 'amount'"),
        ({**GOOD, "count": 1.5}, Reason.WRONG_TYPE, "an integer for 'count', got 1.5"),
        ({**GOOD, "flag": "yes"}, Reason.WRONG_TYPE, "true or false for 'flag'"),
        ({**GOOD, "event_time": 17}, Reason.WRONG_TYPE, "ISO 8601 string"),
        ({**GOOD, "event_time": "noon"}, Reason.INVALID_VALUE, "ISO 8601 time"),
        ({**GOOD, "event_time": "2026-01-01T00:00:00"}, Reason.INVALID_VALUE, "no UTC offset"),
    ],
)
def test_decode_invalid_fields_rejected(document: dict, reason: Reason, detail: str) -> None:
    with pytest.raises(InvalidEventError, match=detail) as caught:
        _decode(document)

    assert caught.value.reason is reason


def test_decode_error_shortens_long_values() -> None:
    with pytest.raises(InvalidEventError) as caught:
        _decode({**GOOD, "amount": "x" * 500})

    assert len(caught.value.detail) < 120


@given(st.binary(max_size=2_000))
def test_decode_arbitrary_bytes_event_or_reason(value: bytes) -> None:
    try:
        CONTRACT.decode(value)
    except InvalidEventError as exc:
        assert isinstance(exc.reason, Reason)
        assert exc.detail


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(_JSON)
def test_decode_arbitrary_json_event_or_reason(document: object) -> None:
    # The standard library encodes what orjson cannot, e.g. integers beyond 64 bits.
    try:
        CONTRACT.decode(json.dumps(document).encode())
    except InvalidEventError as exc:
        assert isinstance(exc.reason, Reason)


@given(
    st.fixed_dictionaries(
        {
            "event_id": st.text(min_size=1) | st.integers() | st.none(),
            "message": st.text() | st.integers() | st.none(),
            "amount": st.floats(allow_nan=False, allow_infinity=False) | st.text() | st.booleans(),
            "count": st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.floats(),
        }
    )
)
def test_decode_near_valid_events_event_or_reason(document: dict) -> None:
    try:
        event = _decode(document)
    except InvalidEventError as exc:
        assert isinstance(exc.reason, Reason)
    else:
        assert event.event_id == document["event_id"]


@pytest.mark.parametrize(
    ("field", "text", "expected"),
    [
        (Field("amount", "double"), "12.5", 12.5),
        (Field("count", "long"), "7", 7),
        (Field("flag", "boolean"), "TRUE", True),
        (Field("flag", "boolean"), "0", False),
        (Field("message", "string"), "12", "12"),
        (Field("amount", "double"), "", None),
    ],
)
def test_coerce_text_converts_to_field_type(field: Field, text: str, expected: object) -> None:
    assert coerce_text(field, text) == expected


@pytest.mark.parametrize(
    ("field", "text"),
    [
        (Field("amount", "double"), "twelve"),
        (Field("count", "long"), "1.5"),
        (Field("flag", "boolean"), "maybe"),
    ],
)
def test_coerce_text_invalid_cell_rejected(field: Field, text: str) -> None:
    with pytest.raises(InvalidEventError, match=field.name) as caught:
        coerce_text(field, text)

    assert caught.value.reason is Reason.WRONG_TYPE
