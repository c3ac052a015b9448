"""Drift baseline: PSI arithmetic, quantile bins and the artifact document."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamscore.baseline import (
    MIN_PROPORTION,
    BaselineError,
    DriftBaseline,
    bin_proportions,
    build_baseline,
    psi,
)


def test_psi_identical_distributions_is_zero() -> None:
    assert psi([0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]) == 0.0


def test_psi_matches_hand_computed_value() -> None:
    # (0.9 - 0.5) ln(0.9 / 0.5) + (0.1 - 0.5) ln(0.1 / 0.5) = 0.4 ln 1.8 + 0.4 ln 5
    expected = 0.4 * math.log(1.8) + 0.4 * math.log(5.0)

    assert psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(expected)
    assert psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.8789, abs=1e-4)


def test_psi_is_symmetric() -> None:
    assert psi([0.2, 0.3, 0.5], [0.5, 0.3, 0.2]) == pytest.approx(
        psi([0.5, 0.3, 0.2], [0.2, 0.3, 0.5])
    )


def test_psi_empty_bin_is_finite() -> None:
    value = psi([0.5, 0.5], [1.0, 0.0])

    expected = 0.5 * math.log(1.0 / 0.5) + (MIN_PROPORTION - 0.5) * math.log(MIN_PROPORTION / 0.5)
    assert value == pytest.approx(expected)
    assert math.isfinite(value)


def test_psi_different_bin_counts_rejected() -> None:
    with pytest.raises(ValueError, match="got 2 and 3 bins"):
        psi([0.5, 0.5], [0.2, 0.3, 0.5])


def test_bin_proportions_ignore_missing() -> None:
    shares = bin_proportions(np.array([0, 0, 1, -1, 2, 2], dtype=np.int16), 4)

    assert shares.tolist() == [0.4, 0.2, 0.4, 0.0]


def test_build_baseline_numeric_deciles() -> None:
    values = [float(value) for value in range(1_000)]

    baseline = build_baseline({"amount": values}, ["amount"], [], "fraud")

    [feature] = baseline.features
    assert feature.name == "amount"
    assert len(feature.edges) == 9
    assert feature.proportions == pytest.approx([0.1] * 10)
    assert baseline.positive_label == "fraud"


def test_build_baseline_text_descriptors() -> None:
    texts = ["free prize now", "see you at lunch tomorrow", "ok", None] * 25

    baseline = build_baseline({"message": texts}, [], ["message"], "spam")

    names = [feature.name for feature in baseline.features]
    assert names == ["message_length", "message_tokens"]
    tokens = baseline.features[1]
    assert tokens.bin_indexes(["ok", "a b c", "one two three four five", None]).tolist() == [
        0,
        1,
        2,
        -1,
    ]
    assert sum(tokens.proportions) == pytest.approx(1.0)


def test_build_baseline_constant_column_has_one_bin() -> None:
    baseline = build_baseline({"hour": [3.0] * 50}, ["hour"], [], None)

    [feature] = baseline.features
    assert feature.edges == ()
    assert feature.proportions == (1.0,)


def test_baseline_document_round_trip() -> None:
    baseline = build_baseline({"amount": list(range(100))}, ["amount"], [], "fraud")

    assert DriftBaseline.from_dict(baseline.to_dict()) == baseline


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 7}, "version 1"),
        ({"features": "amount"}, "list in 'features'"),
        ({"features": [{"name": "amount"}]}, "malformed feature entry"),
    ],
)
def test_baseline_document_malformed_rejected(change: dict[str, object], message: str) -> None:
    document = build_baseline({"amount": list(range(100))}, ["amount"], [], None).to_dict()
    document.update(change)

    with pytest.raises(BaselineError, match=message):
        DriftBaseline.from_dict(document)


def test_baseline_document_wrong_proportion_count_rejected() -> None:
    document = build_baseline({"amount": list(range(100))}, ["amount"], [], None).to_dict()
    document["features"][0]["proportions"] = [1.0]

    with pytest.raises(BaselineError, match="expected 10 proportions for 9 edges, got 1"):
        DriftBaseline.from_dict(document)
