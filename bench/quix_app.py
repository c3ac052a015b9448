"""The spam model in a Quix Streams application, one message at a time, as its docs show.

Runs in `bench/.venv-quix`, because quixstreams 3.28 requires confluent-kafka < 2.13 while
streamscore pins 2.16.1. It imports nothing from streamscore.

Usage: python quix_app.py BOOTSTRAP INPUT OUTPUT GROUP MODEL_FILE EVENTS
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
import pandas as pd
from quixstreams import Application


def main(argv: list[str]) -> int:
    """Score `events` events of the input topic into the output topic, then return."""
    bootstrap, input_name, output_name, group, model_file, events = argv
    state_dir = str(Path(model_file).parent / "quix-state")
    model = joblib.load(model_file)  # a file the bench wrote from the registered model

    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        state_dir=state_dir,
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        consumer_extra_config={"session.timeout.ms": 3000, "heartbeat.interval.ms": 1000},
    )
    input_topic = app.topic(input_name, value_deserializer="json")
    output_topic = app.topic(output_name, value_serializer="json")

    def score(event: dict) -> dict:
        probabilities = model.predict_proba(pd.DataFrame({"message": [event["message"]]}))[0]
        best = int(probabilities.argmax())
        return {
            "event_id": event["event_id"],
            "label": str(model.classes_[best]),
            "probability": float(probabilities[best]),
            "event_time": event["event_time"],
        }

    sdf = app.dataframe(input_topic)
    sdf = sdf.apply(score)
    sdf.to_topic(output_topic)
    app.run(count=int(events), timeout=120, collect=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
