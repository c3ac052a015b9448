"""The worker's registry code against a real `mlflow server` over HTTP."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.reload import ModelWatcher
from stream.scorer import Scorer
from streamscore.broker import free_port
from streamscore.events import Event
from tests.integration.registry import move_alias, register
from tests.tiny_model import TEXTS

# A cold `mlflow server` start imports much of MLflow; on a busy 2-core machine that took 35 s.
_SERVER_START_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start `mlflow server` on a free loopback port with a SQLite store; return its URL."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with (root / "server.log").open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_healthy(url, server, root / "server.log")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_until_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text(errors="replace")[-2_000:]
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"mlflow server did not answer within {_SERVER_START_TIMEOUT_S} s")


def test_http_registry_alias_resolved_loaded_and_followed(mlflow_server: str) -> None:
    name = f"http-{uuid.uuid4().hex[:8]}"
    register(mlflow_server, name, None)
    second = register(mlflow_server, name, None, alias=None)
    loads: list[str] = []

    scorer = Scorer.from_registry(f"models:/{name}@champion", mlflow_server, 1_000)
    scored = scorer.score([Event("e", None, None, {"message": TEXTS[0]})])
    watcher = ModelWatcher(
        f"models:/{name}@champion", mlflow_server, 1_000, scorer.version, 0, loads.append
    )
    move_alias(mlflow_server, name, second)
    watcher.check_once()
    swapped = watcher.take()

    assert scorer.version == "1"
    assert scored.predictions[0] is not None
    assert loads == ["success"]
    assert swapped is not None
    assert swapped.version == second
