"""Generate the synthetic card transactions that the tabular example model is trained on.

Each row is one payment: `amount` (a number), `hour` (0 to 23), `country` and `channel`
(categories) and `label`, `fraud` or `ok`. A payment is fraud when its risk score, a fixed rule
over the four columns, exceeds a threshold. Then `LABEL_NOISE` of the labels are flipped, so no
model can be perfect. The generator is seeded, so every run writes the same rows.

Regenerate the committed files with `python -m trainer.datasets` from the repository root.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["amount", "hour", "country", "channel", "label"]
DEFAULT_ROWS = 3_000
DEFAULT_SEED = 20_240_601
DEFAULT_CSV = Path("data/transactions.csv")
DEFAULT_JSONL = Path("data/transactions.jsonl")

# Share of labels flipped after the rule is applied, from 0 to 1.
LABEL_NOISE = 0.02

_COUNTRIES = ["DE", "FR", "GB", "NL", "US", "BR", "NG"]
_COUNTRY_WEIGHTS = [0.25, 0.2, 0.2, 0.12, 0.13, 0.05, 0.05]
_CHANNELS = ["pos", "web", "mobile", "atm"]
_CHANNEL_WEIGHTS = [0.45, 0.3, 0.2, 0.05]

# Risk score terms of the rule, chosen so that about one payment in eight is fraud.
_RISKY_COUNTRIES = {"BR": 1.5, "NG": 2.0, "US": 0.5}
_RISKY_CHANNELS = {"web": 1.0, "atm": 1.5}
_NIGHT_HOURS = range(1, 6)
_NIGHT_RISK = 1.5
_LARGE_AMOUNT = 400.0
_LARGE_AMOUNT_RISK = 1.5
_FRAUD_THRESHOLD = 2.9


def generate_transactions(rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """Return `rows` labelled payments drawn with the random generator seeded by `seed`."""
    generator = np.random.default_rng(seed)
    # Log-normal amounts: most payments are small, a few are in the thousands.
    amounts = np.round(generator.lognormal(mean=3.8, sigma=1.1, size=rows), 2)
    hours = generator.integers(0, 24, size=rows)
    countries = generator.choice(_COUNTRIES, size=rows, p=_COUNTRY_WEIGHTS)
    channels = generator.choice(_CHANNELS, size=rows, p=_CHANNEL_WEIGHTS)

    risk = (
        np.where(amounts > _LARGE_AMOUNT, _LARGE_AMOUNT_RISK, 0.0)
        + np.log10(amounts) * 0.5
        + np.where(np.isin(hours, _NIGHT_HOURS), _NIGHT_RISK, 0.0)
        + np.array([_RISKY_COUNTRIES.get(country, 0.0) for country in countries])
        + np.array([_RISKY_CHANNELS.get(channel, 0.0) for channel in channels])
    )
    is_fraud = risk > _FRAUD_THRESHOLD
    is_flipped = generator.random(rows) < LABEL_NOISE
    labels = np.where(is_fraud ^ is_flipped, "fraud", "ok")

    return pd.DataFrame(
        {
            "amount": amounts,
            "hour": hours,
            "country": countries,
            "channel": channels,
            "label": labels,
        },
        columns=COLUMNS,
    )


def write_transactions(frame: pd.DataFrame, csv_path: Path, jsonl_path: Path) -> None:
    """Write the payments as CSV with a header line, for training, and as JSON Lines.

    The JSON Lines copy is for `streamscore publish`: it keeps numbers as JSON numbers, while
    every CSV field is published as a string.
    """
    frame.to_csv(csv_path, index=False, lineterminator="\n")
    frame.to_json(jsonl_path, orient="records", lines=True)


def main(arguments: list[str]) -> int:
    """Write the default files, or the CSV and JSON Lines paths given as two arguments."""
    if len(arguments) not in (0, 2):
        print("usage: python -m trainer.datasets [CSV_PATH JSONL_PATH]", file=sys.stderr)
        return 2
    csv_path, jsonl_path = (
        (Path(arguments[0]), Path(arguments[1])) if arguments else (DEFAULT_CSV, DEFAULT_JSONL)
    )
    frame = generate_transactions()
    write_transactions(frame, csv_path, jsonl_path)
    counts = frame["label"].value_counts().to_dict()
    print(f"wrote {len(frame)} rows to {csv_path} and {jsonl_path}, labels {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
