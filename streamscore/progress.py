"""Progress of long commands: a rich bar on a terminal, plain periodic lines otherwise.

Progress goes to stderr, so that stdout keeps only a command's results. A command gets its
progress object from `CliContext.progress`, which turns it off with the group's `--quiet`.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text

# Without a terminal, a line is printed at least this often while work goes on, in seconds.
PLAIN_INTERVAL_S = 5.0
# Without a terminal, a line is also printed each time another tenth of the total is done.
PLAIN_STEP_FRACTION = 0.1


class Progress:
    """Report how far one long task is: done count, rate and ETA, or the current stage.

    Use it as a context manager. On a terminal it renders a rich progress bar. On anything else
    (CI, a log file, a pipe) it prints a plain line every `PLAIN_INTERVAL_S` seconds or every
    tenth of the total, and a closing line. With `quiet` it prints nothing.

    Args:
        description: what the task is, e.g. "publish".
        total: the number of units when known, else None (no percentage, no ETA).
        unit: the plural name of a unit, e.g. "events" or "steps".
        quiet: print nothing.
        stream: where to write (default: stderr).
        is_terminal: force the terminal or plain mode (default: whether `stream` is a TTY).
    """

    def __init__(
        self,
        description: str,
        total: int | None = None,
        *,
        unit: str = "events",
        quiet: bool = False,
        stream: TextIO | None = None,
        is_terminal: bool | None = None,
    ) -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.completed = 0
        self._stream = stream if stream is not None else sys.stderr
        self._quiet = quiet
        if is_terminal is None:
            is_terminal = self._stream.isatty()
        self._bar: RichProgress | None = None
        if not quiet and is_terminal:
            self._bar = _rich_bar(self._stream, unit)
        self._stage = ""
        self._started_at = self._stage_started_at = time.monotonic()
        self._printed_at = self._started_at
        self._printed_step = 0

    def __enter__(self) -> Progress:
        self._started_at = self._printed_at = time.monotonic()
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._stage and exc_type is None:
            # The last stage is done once the task returns.
            self._finish_stage()
        if self._bar is not None:
            self._bar.stop()
        elif not self._quiet and exc_type is None:
            self._print_line(final=True)

    def advance(self, count: int = 1) -> None:
        """Count `count` more units as done."""
        self.completed += count
        if self._bar is not None:
            self._bar.update(self._task, completed=self.completed)
        elif not self._quiet and self._is_line_due():
            self._print_line()

    def stage(self, name: str) -> None:
        """Start a named stage, e.g. "fit", of a task counted in stages. The previous stage is done.

        Without a terminal, a line is printed as each stage ends, so that a task that fails in
        its first stage prints only its error.
        """
        if self._stage:
            self._finish_stage()
        self._stage = name
        self._stage_started_at = time.monotonic()
        if self._bar is not None:
            description = f"{self.description}: {name}"
            self._bar.update(self._task, completed=self.completed, description=description)

    def _finish_stage(self) -> None:
        self.completed += 1
        if self._bar is not None:
            self._bar.update(self._task, completed=self.completed)
        elif not self._quiet:
            stage_s = time.monotonic() - self._stage_started_at
            step = f"{self.completed}/{self.total}" if self.total else f"{self.completed}"
            self._stream.write(
                f"{self.description}: step {step} {self._stage} done in {stage_s:.1f} s\n"
            )
            self._stream.flush()

    def _is_line_due(self) -> bool:
        now = time.monotonic()
        if now - self._printed_at >= PLAIN_INTERVAL_S:
            return True
        if not self.total:
            return False
        step = int(self.completed / self.total / PLAIN_STEP_FRACTION)
        return step > self._printed_step

    def _print_line(self, *, final: bool = False) -> None:
        now = time.monotonic()
        elapsed_s = now - self._started_at
        self._printed_at = now
        if self.total:
            self._printed_step = int(self.completed / self.total / PLAIN_STEP_FRACTION)
        self._stream.write(self._format_line(elapsed_s, final=final) + "\n")
        self._stream.flush()

    def _format_line(self, elapsed_s: float, *, final: bool) -> str:
        """Format one plain line, e.g. `publish: 500/5574 events (9%), 2,500 events/s, ETA 2 s`."""
        done, total = self.completed, self.total
        line = f"{self.description}: {f'{done}/{total}' if total else done} {self.unit}"
        if final:
            return f"{line} in {elapsed_s:.1f} s"
        if total:
            line += f" ({done / total:.0%})"
        rate = done / elapsed_s if elapsed_s > 0 else 0.0
        line += f", {rate:,.0f} {self.unit}/s"
        if total and rate > 0:
            line += f", ETA {(total - done) / rate:.0f} s"
        return line


class _RateColumn(ProgressColumn):
    """Units per second, averaged by rich over the last 30 seconds."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self._unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text(f"- {self._unit}/s", style="progress.data.speed")
        return Text(f"{speed:,.0f} {self._unit}/s", style="progress.data.speed")


def _rich_bar(stream: TextIO, unit: str) -> RichProgress:
    return RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(file=stream, force_terminal=True),
        transient=False,
    )
