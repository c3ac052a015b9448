"""Train a pipeline, log it to MLflow, register it and move the serving alias if it passes."""

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
from mlflow.models import ModelSignature, infer_signature
from mlflow.models.model import ModelInfo
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from streamscore.baseline import BASELINE_ARTIFACT, DriftBaseline, build_baseline
from streamscore.errors import InputFileError, StreamscoreError
from streamscore.settings import Settings, TrainingSettings
from trainer.aliases import AliasMove, alias_version, promote
from trainer.data import read_labelled_data
from trainer.figures import log_figures
from trainer.gate import GateDecision, decide, evaluate_champion
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
    """Outcome of one training run: the registered version, its metrics and the gate decision.

    `previous_alias_version` is the version the alias pointed at before this run, or None when
    the alias did not exist. `alias_move` is None when the gate rejected the version.
    """

    run_id: str
    model_name: str
    version: int
    metrics: dict[str, float]
    alias: str
    gate: GateDecision
    alias_move: AliasMove | None
    previous_alias_version: int | None

    @property
    def alias_moved(self) -> bool:
        """Whether the alias now points at the new version."""
        return self.alias_move is not None


def train(settings: Settings, on_step: Callable[[str], None] | None = None) -> TrainingResult:
    """Train, evaluate and register a pipeline, then apply the quality gate.

    `on_step`, when given, is called with a short name as each of the 6 stages starts: read,
    split, fit, evaluate, log, register (which includes the quality gate).

    Steps:
        1. Read the labelled data.
        2. Split it into stratified train and test sets.
        3. Fit the pipeline on the train set.
        4. Evaluate it on the test set.
        5. Evaluate the current champion, if any, on the same test set and decide the gate.
        6. Log params, metrics, the gate decision, figures, the drift baseline and the model
           to a run.
        7. Register the model as a new version of `training.registered_model`, wait for READY.
        8. Move `training.alias` to the new version only if the gate promoted it.

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
    signature = _infer_signature(pipeline, x_train, training)

    try:
        step("log")
        # 5. Compare with the champion on the same test set and decide the gate.
        experiment_id = _prepare_tracking(settings)
        client = MlflowClient()
        name = training.registered_model
        previous = alias_version(client, name, training.alias)
        champion = None
        if previous is not None:
            champion = evaluate_champion(
                name, previous, signature, x_test, y_test, training.positive_label
            )
        decision = decide(metrics, training, champion)

        # 6. Log params, metrics, the decision, figures and the model to a run.
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.log_params(training.model_dump(mode="json"))
            mlflow.log_metrics({**metrics, **decision.champion_metrics()})
            mlflow.set_tags(decision.tags())
            log_figures(pipeline, x_test, y_test, training.positive_label)
            mlflow.log_dict(_drift_baseline(x_train, training).to_dict(), BASELINE_ARTIFACT)
            model_info = _log_model(pipeline, signature, x_train)
        run_id = run.info.run_id
        logger.info("run logged run_id=%s experiment_id=%s", run_id, experiment_id)

        # 7. Register a new version and wait until it is READY.
        step("register")
        version = _register(client, name, model_info, run_id)
        logger.info(
            "model registered name=%s version=%d run_id=%s %s=%.4f",
            name,
            version,
            run_id,
            decision.metric,
            decision.value,
        )

        # 8. Move the alias only when the gate promoted the new version.
        alias_move = None
        if decision.is_promoted:
            alias_move = promote(client, name, training.alias, version)
        else:
            logger.warning(
                "alias not moved name=%s alias=%s version=%d reason=%s",
                name,
                training.alias,
                version,
                "; ".join(decision.reasons),
            )
    except MlflowException as exc:
        raise TrainingError(
            f"MLflow request to {settings.model.tracking_uri} failed: {exc.message}"
        ) from exc

    return TrainingResult(
        run_id=run_id,
        model_name=name,
        version=version,
        metrics=metrics,
        alias=training.alias,
        gate=decision,
        alias_move=alias_move,
        previous_alias_version=previous,
    )


def _split(
    frame: pd.DataFrame, training: TrainingSettings
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    features = frame[training.feature_columns]
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


def _drift_baseline(x_train: pd.DataFrame, training: TrainingSettings) -> DriftBaseline:
    """Compute the baseline the worker compares live features with; categoricals are left out."""
    if training.pipeline == "text":
        numeric, text = [], [training.text_column]
    else:
        numeric, text = training.numeric_columns, []
    columns = {name: x_train[name].tolist() for name in [*numeric, *text]}
    return build_baseline(columns, numeric, text, training.positive_label)


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


def _infer_signature(
    pipeline: Pipeline, x_train: pd.DataFrame, training: TrainingSettings
) -> ModelSignature:
    """Infer the signature: one input per feature column, typed from its dtype.

    Numeric feature columns are float64, so they become `double`, which the worker accepts as
    any JSON number. Text and categorical columns become `string`.
    """
    sample = x_train.head(SIGNATURE_SAMPLE_ROWS)
    predictions = pd.Series(pipeline.predict(sample), name=training.label_column)
    return infer_signature(sample, predictions)


def _log_model(pipeline: Pipeline, signature: ModelSignature, x_train: pd.DataFrame) -> ModelInfo:
    """Log the fitted pipeline with its signature and an input example to the active run."""
    return mlflow.sklearn.log_model(
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
