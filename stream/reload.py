"""Hot reload: follow a registry alias and prepare the version it moves to, off the hot path."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from stream.scorer import Scorer, resolve
from streamscore.errors import ModelLoadError

logger = logging.getLogger(__name__)

# Called with "success" or "failed" after each load attempt of a new version.
OnLoad = Callable[[str], None]


class ModelWatcher:
    """Check where a `models:/NAME@ALIAS` URI points and load each new version in a thread.

    Owns one daemon thread between `start` and `stop`. Every `interval_s` it resolves the alias.
    When the alias points at a version other than the one served, the thread loads and
    smoke-tests that version while the worker keeps scoring with the old one. Then it offers the
    new version through `take`. The
    worker calls `take` between two batches, so every event is scored by exactly one version.
    A load that fails, or a registry that cannot be reached, leaves the served model in place.
    """

    def __init__(
        self,
        uri: str,
        tracking_uri: str,
        max_event_bytes: int,
        served_version: str,
        interval_s: float,
        on_load: OnLoad,
    ) -> None:
        self._uri = uri
        self._tracking_uri = tracking_uri
        self._max_event_bytes = max_event_bytes
        self._served_version = served_version
        self._interval_s = interval_s
        self._on_load = on_load
        self._lock = threading.Lock()
        self._ready: Scorer | None = None
        self._is_registry_down = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)

    def start(self) -> None:
        """Start checking the alias every `interval_s` seconds; an interval of 0 means never."""
        if self._interval_s <= 0:
            return
        self._thread.start()
        logger.info("model watch started uri=%s interval_s=%g", self._uri, self._interval_s)

    def stop(self) -> None:
        """Stop checking; a load in progress finishes in the background and is dropped."""
        self._stop.set()

    def take(self) -> Scorer | None:
        """Return the newly loaded model once, or None when there is none to swap in."""
        with self._lock:
            ready, self._ready = self._ready, None
        return ready

    def check_once(self) -> None:
        """Resolve the alias and, if it moved, load and smoke-test the version it points at."""
        try:
            name, version, run_id = resolve(self._uri, self._tracking_uri)
        except ModelLoadError as exc:
            self._report_registry(exc)
            return
        self._report_registry(None)
        if version == self._served_version:
            return
        logger.info(
            "alias moved, loading uri=%s version=%s served=%s",
            self._uri,
            version,
            self._served_version,
        )
        try:
            scorer = Scorer.load_version(
                name, version, run_id, self._tracking_uri, self._max_event_bytes
            )
        except ModelLoadError as exc:
            # The next check tries again: the cause may be passing, such as a registry restart.
            logger.error(
                "model reload failed, keeping version=%s error=%s", self._served_version, exc
            )
            self._on_load("failed")
            return
        with self._lock:
            self._ready = scorer
        self._served_version = version
        self._on_load("success")

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.check_once()
            except Exception:  # the watcher must outlive any surprise from the registry client
                logger.exception("model watch check failed uri=%s", self._uri)

    def _report_registry(self, error: ModelLoadError | None) -> None:
        """Log the registry going down or coming back once, not at every check."""
        if error is not None and not self._is_registry_down:
            logger.warning("registry check failed, serving the loaded model error=%s", error)
        elif error is None and self._is_registry_down:
            logger.info("registry reachable again uri=%s", self._uri)
        self._is_registry_down = error is not None
