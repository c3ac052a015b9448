"""The worker's signal handling: a graceful stop, forced by a second signal or a timeout."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from stream.cli import EXIT_FORCED

# A stand-in for the worker loop: it installs the real handlers and takes `work_s` to stop.
_LOOP = textwrap.dedent(
    """
    import sys, threading, time
    from stream.cli import _install_signal_handlers

    stopped = threading.Event()
    _install_signal_handlers(stopped.set, timeout_s=float(sys.argv[1]))
    print("ready", flush=True)
    stopped.wait()
    time.sleep(float(sys.argv[2]))  # finishing the batch in hand
    print("stopped cleanly", flush=True)
    """
)


def _run(timeout_s: float, work_s: float, signals: int) -> tuple[int, str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _LOOP, str(timeout_s), str(work_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    for _ in range(signals):
        process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    return process.returncode, output


def test_sigterm_lets_the_batch_finish() -> None:
    exit_code, output = _run(timeout_s=10, work_s=0.5, signals=1)

    assert exit_code == 0
    assert "stopped cleanly" in output


def test_second_sigterm_exits_at_once_without_committing() -> None:
    exit_code, output = _run(timeout_s=10, work_s=20, signals=2)

    assert exit_code == EXIT_FORCED
    assert "stopped cleanly" not in output


def test_stop_that_outlasts_the_timeout_is_forced() -> None:
    exit_code, output = _run(timeout_s=0.5, work_s=20, signals=1)

    assert exit_code == EXIT_FORCED
    assert "stopped cleanly" not in output
