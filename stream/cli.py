"""The `streamscore worker` command: load the model, serve metrics, run the loop until a signal."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from streamscore.errors import BrokerError

if TYPE_CHECKING:
    from streamscore.cli import CliContext

logger = logging.getLogger(__name__)

# Exit code when a second signal forces the worker out without committing.
EXIT_FORCED = 3


@click.command()
@click.option("--model-uri", help="Registered model to serve, e.g. models:/sms-spam@champion.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Maximum events per batch.")
@click.option("--group-id", help="Consumer group to join.")
@click.option("--metrics-port", type=click.IntRange(0, 65_535), help="Port of /metrics.")
@click.pass_obj
def worker(
    cli_context: CliContext,
    model_uri: str | None,
    batch_size: int | None,
    group_id: str | None,
    metrics_port: int | None,
) -> None:
    """Score the input topic into the output topic until SIGTERM or Ctrl-C.

    \b
    Example:
      streamscore worker --model-uri models:/sms-spam@champion --batch-size 200
    """
    from stream.health import Health
    from stream.metrics import WorkerMetrics
    from stream.reload import ModelWatcher
    from stream.scorer import Scorer
    from stream.worker import Worker
    from streamscore.kafka import check_client_properties, ensure_topics

    overrides: dict[str, dict[str, object]] = {"model": {}, "worker": {}, "metrics": {}}
    if model_uri:
        overrides["model"]["uri"] = model_uri
    if batch_size:
        overrides["worker"]["batch_size"] = batch_size
    if group_id:
        overrides["worker"]["group_id"] = group_id
    if metrics_port is not None:
        overrides["metrics"]["port"] = metrics_port
    settings = cli_context.settings(**overrides)
    check_client_properties(settings.kafka)
    _bound_registry_retries()

    # Serve metrics first: a port in use should fail before the slow model load. Until the
    # model is loaded and partitions are assigned, /readyz reports why the worker is not ready.
    metrics = WorkerMetrics()
    health = Health.from_settings(settings.worker)
    port = metrics.serve(settings.metrics.host, settings.metrics.port, health)
    logger.info(
        "metrics served url=http://%s:%d/metrics probes=/healthz,/readyz stall_limit_s=%g",
        settings.metrics.host,
        port,
        health.stall_limit_s,
    )
    scorer = Scorer.from_registry(
        settings.model.uri, settings.model.tracking_uri, settings.worker.max_event_bytes
    )
    try:
        ensure_topics(settings)
    except BrokerError as exc:
        logger.warning("topics not checked, continuing error=%s", exc)

    model = settings.model
    watcher = ModelWatcher(
        model.uri,
        model.tracking_uri,
        settings.worker.max_event_bytes,
        scorer.version,
        model.refresh_interval_s,
        on_load=lambda outcome: metrics.model_reloads.labels(outcome).inc(),
    )
    shadow_watcher = None
    if model.shadow_uri is not None:
        # The shadow model is optional: when it cannot be loaded now, the watcher retries.
        shadow_watcher = ModelWatcher(
            model.shadow_uri,
            model.tracking_uri,
            settings.worker.max_event_bytes,
            "",
            model.refresh_interval_s,
            on_load=lambda outcome: None,
        )
        shadow_watcher.check_once()
    loop = Worker(settings, scorer, metrics, watcher, shadow_watcher, health)
    _install_signal_handlers(loop.request_stop, settings.worker.shutdown_timeout_s)
    loop.run()


def _bound_registry_retries() -> None:
    """Give up on an unreachable MLflow server after about 30 s instead of MLflow's minutes.

    MLflow 3 retries HTTP requests 7 times with exponential backoff by default; an explicit
    setting in the environment still wins.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def _install_signal_handlers(request_stop: Callable[[], None], timeout_s: float) -> None:
    """Stop gracefully on the first SIGTERM or SIGINT; exit at once on the second.

    A graceful stop that takes longer than `timeout_s` (an unreachable broker, a
    model stuck in a batch) also ends in an exit without committing.
    """

    def force_exit(reason: str) -> None:
        logger.error("%s, exiting without committing undelivered work", reason)
        logging.shutdown()
        os._exit(EXIT_FORCED)

    def handle(signum: int, _: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if _received:
            force_exit(f"second signal {name}")
        _received.append(signum)
        logger.info("stopping after the batch in hand signal=%s timeout_s=%g", name, timeout_s)
        timer = threading.Timer(timeout_s, force_exit, [f"not stopped within {timeout_s:g} s"])
        timer.daemon = True
        timer.start()
        request_stop()

    _received: list[int] = []
    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


@click.command("score-file")
@click.argument("source", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.argument("output", type=click.Path(path_type=Path, dir_okay=False, writable=True))
@click.option("--model-uri", help="Registered model to use (default: model.uri).")
@click.option("--columns", help="Column names, comma-separated, for a file without a header line.")
@click.option("--format", "file_format", type=click.Choice(["tsv", "csv", "jsonl"]))
@click.option("--id-field", help="Field with the event id (default: row-N).")
@click.pass_obj
def score_file(
    cli_context: CliContext,
    source: Path,
    output: Path,
    model_uri: str | None,
    columns: str | None,
    file_format: str | None,
    id_field: str | None,
) -> None:
    """Score SOURCE with the worker's model and scorer; write results to OUTPUT (JSON Lines).

    Rows that cannot be scored go to OUTPUT's stem + .rejected.jsonl with the reason.

    \b
    Example:
      streamscore score-file data/sms_spam_collection.tsv scores.jsonl --columns label,message
    """
    from producer.reader import count_rows
    from stream.batch import score_file as score
    from stream.scorer import Scorer

    settings = cli_context.settings(model={"uri": model_uri} if model_uri else {})
    _bound_registry_retries()
    scorer = Scorer.from_registry(
        settings.model.uri, settings.model.tracking_uri, settings.worker.max_event_bytes
    )
    names = [name.strip() for name in columns.split(",")] if columns else None
    total = count_rows(source, file_format=file_format, has_header=names is None)
    with cli_context.progress("score-file", total=total) as progress:
        report = score(
            scorer,
            source,
            output,
            batch_size=settings.worker.batch_size,
            file_format=file_format,
            columns=names,
            id_field=id_field,
            on_batch=progress.advance,
        )
    click.echo(
        f"scored {report.scored} rows of {source} with {scorer.name} version {scorer.version} "
        f"into {report.output}; {report.rejected} rejected ({report.rejected_output})"
    )
