"""Liveness and readiness of a worker, and the HTTP server of /metrics, /healthz and /readyz."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app

from streamscore.errors import StreamscoreError
from streamscore.settings import WorkerSettings

# Seconds that scoring one batch may take on top of the loop's waits. A forest scores thousands
# of events in well under a second; this leaves room for a slow model on a busy machine.
SCORING_SLACK_S = 60.0

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class Health:
    """What /healthz and /readyz report, kept up to date by the worker through its hooks.

    Liveness: the worker loop ticks before every poll, and while it waits for delivery reports
    or a retry backoff. It is alive while the last tick is at most `stall_limit_s` old, and
    also before the first tick, while the model loads. Readiness: a model is loaded, the worker
    has partitions or has joined its group (a group with more workers than partitions leaves
    some without any), and a broker is reachable.

    The worker thread writes and the HTTP threads read. Each update is one attribute
    assignment, which the GIL makes atomic, so there is no lock.
    """

    def __init__(self, stall_limit_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_limit_s = stall_limit_s
        self._clock = clock
        self._last_tick: float | None = None
        self._model: str | None = None
        self._assigned = 0
        self._is_group_joined = False
        self._broker_problem: str | None = "no broker contacted yet"

    @classmethod
    def from_settings(cls, worker: WorkerSettings) -> Health:
        """Derive the stall limit from the longest single wait of the loop.

        One poll waits at most `batch_wait_ms`, one flush round `flush_timeout_s`, one backoff
        `retry_backoff_max_s`. Three times the longest of them, plus `SCORING_SLACK_S`,
        tolerates a busy machine without hiding a loop that hangs.
        """
        longest_wait_s = max(
            worker.batch_wait_ms / 1000, worker.flush_timeout_s, worker.retry_backoff_max_s
        )
        return cls(3 * longest_wait_s + SCORING_SLACK_S)

    def tick(self) -> None:
        """Record that the worker loop is making progress."""
        self._last_tick = self._clock()

    def set_model(self, name: str, version: str) -> None:
        """Record the model version being served."""
        self._model = f"{name} version {version}"

    def set_assigned(self, count: int) -> None:
        """Record how many input partitions the worker holds."""
        self._assigned = count

    def set_group_joined(self, is_joined: bool) -> None:
        """Record whether the worker is a member of its group with a settled assignment."""
        self._is_group_joined = is_joined

    def set_broker(self, problem: str | None) -> None:
        """Record that a broker is reachable (None) or why none is."""
        self._broker_problem = problem

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """Return whether the loop is alive, and the JSON body with the details."""
        if self._last_tick is None:
            return True, {"status": "starting", "detail": "the worker loop has not started yet"}
        age_s = self._clock() - self._last_tick
        body = {"last_loop_s_ago": round(age_s, 3), "stall_limit_s": self.stall_limit_s}
        if age_s > self.stall_limit_s:
            detail = f"the worker loop has not run for {age_s:.0f} s"
            return False, {"status": "stalled", "detail": detail, **body}
        return True, {"status": "alive", **body}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Return whether the worker can score events, and each check with its detail."""
        checks = {
            "model": _check(self._model is not None, self._model or "no model loaded yet"),
            "group": _check(
                self._assigned > 0 or self._is_group_joined,
                f"{self._assigned} partitions assigned"
                if self._assigned or self._is_group_joined
                else "not a member of the consumer group yet",
            ),
            "broker": _check(self._broker_problem is None, self._broker_problem or "reachable"),
        }
        is_ready = all(check["ok"] for check in checks.values())
        reasons = [check["detail"] for check in checks.values() if not check["ok"]]
        body: dict[str, Any] = {"status": "ready" if is_ready else "not ready", "checks": checks}
        if reasons:
            body["reasons"] = reasons
        return is_ready, body


def _check(is_ok: bool, detail: str) -> dict[str, Any]:
    return {"ok": is_ok, "detail": detail}


class HttpServer:
    """A threaded HTTP server of /metrics, /healthz and /readyz, run in a daemon thread."""

    def __init__(self, server: WSGIServer) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        """The port it listens on, useful when it was started on port 0."""
        return int(self._server.server_port)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


def serve(
    host: str, port: int, registry: CollectorRegistry, health: Health | None = None
) -> HttpServer:
    """Serve the registry on /metrics and, with `health`, /healthz and /readyz.

    Raises:
        StreamscoreError: the address is in use or cannot be bound.
    """
    application = _application(make_wsgi_app(registry), health)
    try:
        server = make_server(
            host, port, application, _ThreadingWsgiServer, handler_class=_QuietHandler
        )
    except OSError as exc:
        raise StreamscoreError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror}; another worker may use "
            f"it, so choose another port with --metrics-port (0 picks a free one)"
        ) from exc
    return HttpServer(server)


def _application(metrics_app: Callable[..., Iterable[bytes]], health: Health | None) -> Any:
    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if health is not None and path in ("/healthz", "/readyz"):
            is_ok, body = health.liveness() if path == "/healthz" else health.readiness()
            status = "200 OK" if is_ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json")])
            return [orjson.dumps(body)]
        return metrics_app(environ, start_response)

    return application


class _ThreadingWsgiServer(ThreadingMixIn, WSGIServer):
    """One thread per request, so a slow scrape never delays a probe."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """Log no line per request: probes and scrapes arrive every few seconds."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Drop the access log line."""
