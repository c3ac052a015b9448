"""Train the spam pipeline, log it to MLflow, register it and move the serving alias."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from streamscore.errors import InputFileError, StreamscoreError
from streamscore.settings import Settings, TrainingSettings
from trainer.data import read_labelled_data
from trainer.pipeline import build_pipeline, evaluate

logger = logging.getLogger(__name__)

# Maximum time to wait for a new model version to become READY, in seconds, as in MLflow's own
# wait. A SQLite registry creates versions READY at once, but a remote one may copy artifacts first.
READY_TIMEOUT_S = 300.0
READY_POLL_INTERVAL_S = 1.0

# Rows of the training set used to infer the model signature, and rows stored as input example.
SIGNATURE_SAMPLE_ROWS = 100
INPUT_EXAMPLE_ROWS = 3

# The model is saved with skops, MLflow 3.17's default outside Databricks. Loading a skops file
# builds only allow-listed types and runs no pickled code, unlike cloudpickle. skops 0.16 does not
# trust the forest's tree storage by default, and MLflow rejects the model at log time unless it
# is listed here. MLflow stores this list in the MLmodel file, so `mlflow.sklearn.load_model`
# needs no extra flag in another process. The list is only as trustworthy as that file's store.
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


class TrainingError(StreamscoreError):
    """The MLflow tracking store or model registry failed during a training run."""


@dataclass(frozen=True)
class TrainingResult:
    """Outcome of one training run: the registered version, its metrics and the alias decision.

    `previous_alias_version` is the version the alias pointed at before this run, or None when
    the alias did not exist.
    """

    run_id: str
    model_name: str
    version: int
    metrics: dict[str, float]
    alias: str
    alias_moved: bool
    previous_alias_version: int | None


def train(settings: Settings, on_step: Callable[[str], None] | None = None) -> TrainingResult:
    """Train, evaluate and register the spam pipeline, then apply the quality gate.

    `on_step`, when given, is called with a short name as each of the 6 stages starts: read,
    split, fit, evaluate, log, register (which includes the quality gate).

    Steps:
        1. Read the labelled data.
        2. Split it into stratified train and test sets.
        3. Fit the pipeline on the train set.
        4. Evaluate it on the test set.
        5. Log params, metrics and the model to a run of `training.experiment`.
        6. Register the model as a new version of `training.registered_model`, wait for READY.
        7. Move `training.alias` to the new version only if its f1 is at least `min_f1`.

    Raises:
        InputFileError: the data file cannot be read or split.
        TrainingError: the MLflow tracking store or registry rejected a request.
    """
    training = settings.training
    step = on_step or (lambda name: None)

    # 1. Read the labelled data.
    step("read")
    frame = read_labelled_data(training)

    # 2. Split it into stratified train and test sets.
    step("split")
    x_train, x_test, y_train, y_test = _split(frame, training)

    # 3. Fit the pipeline on the train set.
    step("fit")
    pipeline = build_pipeline(training)
    pipeline.fit(x_train, y_train)

    # 4. Evaluate it on the test set.
    step("evaluate")
    metrics = evaluate(pipeline, x_test, y_test, training.positive_label)

    try:
        # 5. Log params, metrics and the model to a run.
        step("log")
        experiment_id = _prepare_tracking(settings)
        run_id, model_info = _log_run(experiment_id, pipeline, x_train, metrics, training)

        # 6. Register a new version and wait until it is READY.
        step("register")
        client = MlflowClient()
        version = _register(client, training.registered_model, model_info, run_id)
        logger.info(
            "model registered name=%s version=%d run_id=%s f1=%.4f",
            training.registered_model,
            version,
            run_id,
            metrics["f1"],
        )

        # 7. Move the alias only when the new version passes the quality gate.
        previous = _alias_version(client, training.registered_model, training.alias)
        alias_moved = _apply_quality_gate(client, training, version, metrics["f1"])
    except MlflowException as exc:
        raise TrainingError(
            f"MLflow request to {settings.model.tracking_uri} failed: {exc.message}"
        ) from exc

    return TrainingResult(
        run_id=run_id,
        model_name=training.registered_model,
        version=version,
        metrics=metrics,
        alias=training.alias,
        alias_moved=alias_moved,
        previous_alias_version=previous,
    )


def _split(
    frame: pd.DataFrame, training: TrainingSettings
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    features = frame[[training.text_column]]
    labels = frame[training.label_column]
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            features,
            labels,
            test_size=training.test_size,
            random_state=training.random_state,
            stratify=labels,
        )
    except ValueError as exc:
        raise InputFileError(
            f"training data {training.data_path}: cannot split {len(frame)} rows into stratified "
            f"train and test sets with test_size {training.test_size}: {exc}"
        ) from exc
    logger.info("data split train_rows=%d test_rows=%d", len(x_train), len(x_test))
    return x_train, x_test, y_train, y_test


def _prepare_tracking(settings: Settings) -> str:
    """Point MLflow at the tracking store and return the experiment id, creating it if missing."""
    uri = settings.model.tracking_uri
    name = settings.training.experiment
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
        try:
            database.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrainingError(
                f"cannot create directory {database.parent} of MLflow store {uri}: {exc.strerror}"
            ) from exc
    mlflow.set_tracking_uri(uri)

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        return _create_experiment(name, uri, settings.state_dir)
    if experiment.lifecycle_stage == "deleted":
        raise TrainingError(
            f"experiment {name!r} is deleted in {uri}: restore it or set training.experiment"
        )
    return str(experiment.experiment_id)


def _create_experiment(name: str, tracking_uri: str, state_dir: Path) -> str:
    # A server chooses where artifacts of its experiments go. A local store would otherwise put
    # them in ./mlruns of whatever directory the command runs in.
    artifact_location = None
    if not tracking_uri.startswith(("http://", "https://")):
        artifact_location = (state_dir / "artifacts").resolve().as_uri()
    experiment_id = mlflow.create_experiment(name, artifact_location=artifact_location)
    logger.info(
        "experiment created name=%s id=%s artifact_location=%s",
        name,
        experiment_id,
        artifact_location or "server default",
    )
    return experiment_id


def _log_run(
    experiment_id: str,
    pipeline: Pipeline,
    x_train: pd.DataFrame,
    metrics: dict[str, float],
    training: TrainingSettings,
) -> tuple[str, ModelInfo]:
    """Log params, metrics and the model to a new run and return the run id and model info."""
    sample = x_train.head(SIGNATURE_SAMPLE_ROWS)
    predictions = pd.Series(pipeline.predict(sample), name=training.label_column)
    signature = infer_signature(sample, predictions)

    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params(training.model_dump(mode="json"))
        mlflow.log_metrics(metrics)
        model_info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=signature,
            input_example=x_train.head(INPUT_EXAMPLE_ROWS),
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            # The pipeline contains only scikit-learn classes, so MLflow's pinned defaults are
            # complete. Inferring them instead loads the model in a subprocess, the slowest step.
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
        )
    logger.info("run logged run_id=%s experiment_id=%s", run.info.run_id, experiment_id)
    return run.info.run_id, model_info


def _register(client: MlflowClient, name: str, model_info: ModelInfo, run_id: str) -> int:
    """Create a new version of the registered model `name`, wait until READY, return its number."""
    try:
        client.create_registered_model(name)
        logger.info("registered model created name=%s", name)
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise

    # await_creation_for=0 skips MLflow's own wait, which logs and polls on its own schedule.
    created = client.create_model_version(
        name,
        source=model_info.model_uri,
        run_id=run_id,
        model_id=model_info.model_id,
        await_creation_for=0,
    )
    ready = _wait_until_ready(client, created)
    return int(ready.version)


def _wait_until_ready(client: MlflowClient, version: ModelVersion) -> ModelVersion:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while version.status == "PENDING_REGISTRATION":
        if time.monotonic() > deadline:
            raise TrainingError(
                f"timed out after {READY_TIMEOUT_S:.0f} s waiting for model {version.name} "
                f"version {version.version} to become READY"
            )
        time.sleep(READY_POLL_INTERVAL_S)
        version = client.get_model_version(version.name, version.version)
    if version.status != "READY":
        raise TrainingError(
            f"registration of model {version.name} version {version.version} failed: "
            f"status {version.status}, {version.status_message}"
        )
    return version


def _alias_version(client: MlflowClient, name: str, alias: str) -> int | None:
    aliases = client.get_registered_model(name).aliases
    return int(aliases[alias]) if alias in aliases else None


def _apply_quality_gate(
    client: MlflowClient, training: TrainingSettings, version: int, f1: float
) -> bool:
    """Point the alias at `version` if `f1` reaches `training.min_f1`. Return whether it moved."""
    name, alias = training.registered_model, training.alias
    if f1 < training.min_f1:
        logger.warning(
            "alias not moved name=%s alias=%s version=%d f1=%.4f min_f1=%.4f",
            name,
            alias,
            version,
            f1,
            training.min_f1,
        )
        return False
    client.set_registered_model_alias(name, alias, str(version))
    logger.info("alias moved name=%s alias=%s version=%d", name, alias, version)
    return True
