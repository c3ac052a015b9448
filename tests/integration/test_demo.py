"""`streamscore demo` end to end, as `make demo` runs it, on the first SMS messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_every_event_gets_one_result(tmp_path: Path) -> None:
    environment = dict(os.environ)
    environment["STREAMSCORE_STATE_DIR"] = str(tmp_path / "state")
    environment["STREAMSCORE_MODEL__TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    environment["STREAMSCORE_KAFKA__SESSION_TIMEOUT_MS"] = "2000"
    environment["STREAMSCORE_KAFKA__HEARTBEAT_INTERVAL_MS"] = "500"

    completed = subprocess.run(
        [sys.executable, "-m", "streamscore", "demo", "--limit", "300", "--timeout", "120"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    summary = completed.stdout
    assert "events published            300" in summary
    assert "results received            300" in summary
    assert "duplicate results           0" in summary
    assert "dead-lettered               0" in summary
    assert "accuracy vs dataset labels" in summary
    assert "events/s" in summary
    assert "OK: one result per event" in summary
