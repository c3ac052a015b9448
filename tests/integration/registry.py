"""Register small models in a real MLflow registry, faster than a full training run."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.pipeline import Pipeline

from tests.tiny_model import TEXTS, tiny_pipeline


def register(
    tracking_uri: str,
    name: str,
    artifact_dir: Path | None,
    pipeline: Pipeline | None = None,
    alias: str | None = "champion",
    example: pd.DataFrame | None = None,
) -> str:
    """Log `pipeline` (default: the tiny text model) as a new version of `name`.

    Artifacts go to `artifact_dir`, never to an `mlruns/` folder in the working directory;
    with None, the tracking server chooses (an HTTP server stores them itself).

    Returns:
        The new version number, as the registry writes it.
    """
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("registry-tests")
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(
            "registry-tests", artifact_location=artifact_dir.as_uri() if artifact_dir else None
        )
    )
    pipeline = pipeline if pipeline is not None else tiny_pipeline()
    example = example if example is not None else pd.DataFrame({"message": TEXTS[:2]})
    signature = infer_signature(pd.DataFrame({"message": TEXTS[:2]}), pd.Series(["ham", "spam"]))
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=signature,
            input_example=example,
            # Inferring requirements loads the model in a subprocess: seconds per version.
            pip_requirements=["scikit-learn"],
        )
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name)
    version = client.create_model_version(
        name, info.model_uri, run_id=info.run_id, model_id=info.model_id
    )
    if alias is not None:
        client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def move_alias(tracking_uri: str, name: str, version: str, alias: str = "champion") -> None:
    """Point `alias` of `name` at `version`."""
    MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(name, alias, version)
