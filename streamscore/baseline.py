"""Drift baseline: per-feature bins and proportions from training data, and the PSI against them.

The trainer saves a baseline with each model as the run artifact `drift_baseline.json`. The
worker bins live events with the same edges and compares the proportions with the population
stability index (PSI). Numeric columns are binned by value. A text column becomes two
descriptors, its length in characters (`<column>_length`) and its whitespace-separated token
count (`<column>_tokens`). Categorical columns are left out: their drift would need category
shares, and a new category already shows up as a lower score rather than an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

BASELINE_ARTIFACT = "drift_baseline.json"
BASELINE_VERSION = 1
# Quantile bins per feature. Deciles are the usual choice for PSI: enough bins to see a shift
# in shape, few enough that each contains about 10% of the baseline.
DEFAULT_BINS = 10
# Stands in for an empty bin's proportion, so that the logarithm in the PSI stays finite.
MIN_PROPORTION = 1e-4
# Bin index of an event without a value for the feature; such events are not counted.
MISSING_BIN = -1

Descriptor = Literal["value", "length", "tokens"]
_DESCRIPTORS: tuple[Descriptor, ...] = ("value", "length", "tokens")


class BaselineError(ValueError):
    """A baseline document is malformed; the message names the field."""


@dataclass(frozen=True)
class FeatureBaseline:
    """The bins of one feature and the share of training rows in each.

    `edges` are the inner bin edges in ascending order. Bin 0 contains values below
    `edges[0]`, bin i values from `edges[i-1]` up to but excluding `edges[i]`, and the last bin
    the rest, so `proportions` has one entry more than `edges`.
    """

    name: str
    column: str
    descriptor: Descriptor
    edges: tuple[float, ...]
    proportions: tuple[float, ...]

    def bin_indexes(self, values: Sequence[Any]) -> np.ndarray:
        """Return the bin of each value as int16, `MISSING_BIN` where a value is None."""
        numbers = describe(self.descriptor, values)
        indexes = np.searchsorted(np.asarray(self.edges), numbers, side="right").astype(np.int16)
        indexes[np.isnan(numbers)] = MISSING_BIN
        return indexes


@dataclass(frozen=True)
class DriftBaseline:
    """The baselines of a model's features and the label whose probability is its score."""

    features: tuple[FeatureBaseline, ...]
    positive_label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the document stored as the run artifact."""
        return {
            "version": BASELINE_VERSION,
            "positive_label": self.positive_label,
            "features": [
                {
                    "name": feature.name,
                    "column": feature.column,
                    "descriptor": feature.descriptor,
                    "edges": list(feature.edges),
                    "proportions": list(feature.proportions),
                }
                for feature in self.features
            ],
        }

    @classmethod
    def from_dict(cls, document: Any) -> DriftBaseline:
        """Read a baseline document.

        Raises:
            BaselineError: a field is missing or has the wrong type, or edges and proportions
                do not fit together.
        """
        if not isinstance(document, dict) or document.get("version") != BASELINE_VERSION:
            raise BaselineError(f"expected a baseline document of version {BASELINE_VERSION}")
        features = document.get("features")
        if not isinstance(features, list):
            raise BaselineError("expected a list in 'features'")
        label = document.get("positive_label")
        return cls(tuple(_feature_from_dict(item) for item in features), label)


def _feature_from_dict(item: Any) -> FeatureBaseline:
    try:
        name, column = str(item["name"]), str(item["column"])
        descriptor = item["descriptor"]
        edges = tuple(float(edge) for edge in item["edges"])
        proportions = tuple(float(share) for share in item["proportions"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BaselineError(f"malformed feature entry {item!r}: {exc}") from exc
    if descriptor not in _DESCRIPTORS:
        raise BaselineError(f"feature {name!r}: unknown descriptor {descriptor!r}")
    if len(proportions) != len(edges) + 1:
        raise BaselineError(
            f"feature {name!r}: expected {len(edges) + 1} proportions for {len(edges)} edges, "
            f"got {len(proportions)}"
        )
    if list(edges) != sorted(set(edges)):
        raise BaselineError(f"feature {name!r}: edges are not strictly ascending")
    return FeatureBaseline(name, column, descriptor, edges, proportions)


def describe(descriptor: Descriptor, values: Sequence[Any]) -> np.ndarray:
    """Turn the values of one column into float64 numbers; None becomes NaN."""
    count = len(values)
    if descriptor == "value":
        return np.fromiter((math.nan if v is None else v for v in values), np.float64, count)
    if descriptor == "length":
        return np.fromiter((math.nan if v is None else len(v) for v in values), np.float64, count)
    return np.fromiter(
        (math.nan if v is None else len(v.split()) for v in values), np.float64, count
    )


def build_baseline(
    columns: dict[str, Sequence[Any]],
    numeric_columns: Sequence[str],
    text_columns: Sequence[str],
    positive_label: str | None,
    bins: int = DEFAULT_BINS,
) -> DriftBaseline:
    """Compute quantile bins and training proportions of each numeric and text column.

    Args:
        columns: the training rows, column name to values.
        numeric_columns: columns binned by value.
        text_columns: columns binned by length and by token count.
        positive_label: label whose probability the worker histograms as the score.
        bins: quantile bins per feature; repeated quantiles of discrete data merge into one.
    """
    specs: list[tuple[str, str, Descriptor]] = [(name, name, "value") for name in numeric_columns]
    for name in text_columns:
        specs += [(f"{name}_length", name, "length"), (f"{name}_tokens", name, "tokens")]
    features = []
    for feature, column, descriptor in specs:
        edges = _quantile_edges(describe(descriptor, columns[column]), bins)
        template = FeatureBaseline(feature, column, descriptor, edges, ())
        proportions = bin_proportions(template.bin_indexes(columns[column]), len(edges) + 1)
        features.append(
            FeatureBaseline(feature, column, descriptor, edges, tuple(proportions.tolist()))
        )
    return DriftBaseline(tuple(features), positive_label)


def _quantile_edges(numbers: np.ndarray, bins: int) -> tuple[float, ...]:
    """Return the unique inner quantiles of the numbers that are not NaN."""
    numbers = numbers[~np.isnan(numbers)]
    if not len(numbers):
        return ()
    quantiles = np.unique(np.quantile(numbers, np.linspace(0, 1, bins + 1)[1:-1]))
    # A quantile equal to the minimum would leave the first bin empty by construction.
    return tuple(float(edge) for edge in quantiles if edge > numbers.min())


def bin_proportions(indexes: np.ndarray, bin_count: int) -> np.ndarray:
    """Return the share of each bin among the indexes that are not `MISSING_BIN`."""
    present = indexes[indexes != MISSING_BIN]
    counts = np.bincount(present, minlength=bin_count).astype(np.float64)
    total = counts.sum()
    return counts / total if total else counts


def psi(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray) -> float:
    """Return the population stability index of two proportion vectors over the same bins.

    PSI = sum over bins of (actual - expected) * ln(actual / expected). A proportion of 0 counts
    as `MIN_PROPORTION`, so a bin that one side leaves empty adds a large but finite term.

    Raises:
        ValueError: the vectors differ in length.
    """
    expected_array = np.maximum(np.asarray(expected, dtype=np.float64), MIN_PROPORTION)
    actual_array = np.maximum(np.asarray(actual, dtype=np.float64), MIN_PROPORTION)
    if expected_array.shape != actual_array.shape:
        raise ValueError(
            f"expected proportions over the same bins, got {expected_array.size} and "
            f"{actual_array.size} bins"
        )
    return float(np.sum((actual_array - expected_array) * np.log(actual_array / expected_array)))
