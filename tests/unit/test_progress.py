"""The progress report: a rich bar on a terminal, plain lines otherwise, nothing when quiet."""

from __future__ import annotations

import io

from streamscore.progress import Progress


def test_progress_plain_prints_every_tenth() -> None:
    stream = io.StringIO()

    with Progress("publish", 100, stream=stream, is_terminal=False) as progress:
        for _ in range(100):
            progress.advance()
    lines = stream.getvalue().splitlines()

    assert len(lines) == 11
    assert lines[0].startswith("publish: 10/100 events (10%), ")
    assert "events/s, ETA " in lines[0]
    assert lines[-1].startswith("publish: 100/100 events in ")


def test_progress_quiet_prints_nothing() -> None:
    stream = io.StringIO()

    with Progress("publish", 10, stream=stream, quiet=True, is_terminal=True) as progress:
        progress.advance(10)

    assert stream.getvalue() == ""


def test_progress_terminal_renders_bar_and_rate() -> None:
    stream = io.StringIO()

    with Progress("publish", 10, stream=stream, is_terminal=True) as progress:
        progress.advance(10)
    output = stream.getvalue()

    assert "publish" in output
    assert "10/10" in output
    assert "events/s" in output


def test_progress_failed_first_stage_prints_nothing() -> None:
    stream = io.StringIO()

    try:
        with Progress("train", 3, unit="steps", stream=stream, is_terminal=False) as progress:
            progress.stage("read")
            raise FileNotFoundError("absent.tsv")
    except FileNotFoundError:
        pass

    assert stream.getvalue() == ""


def test_progress_stages_print_one_line_each() -> None:
    stream = io.StringIO()

    with Progress("train", 3, unit="steps", stream=stream, is_terminal=False) as progress:
        for name in ("read", "fit", "register"):
            progress.stage(name)
    lines = stream.getvalue().splitlines()

    assert [line.split(" done in ")[0] for line in lines[:3]] == [
        "train: step 1/3 read",
        "train: step 2/3 fit",
        "train: step 3/3 register",
    ]
    assert lines[3].startswith("train: 3/3 steps in ")
    assert progress.completed == 3
