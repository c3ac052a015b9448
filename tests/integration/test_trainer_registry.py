"""Integration tests of training against a real MLflow SQLite store and model registry."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from streamscore.cli import cli
from streamscore.settings import Settings
from tests.integration.trainer_helpers import (
    REPO_ROOT,
    make_training_settings,
    use_cli_environment,
    write_sms_subset,
)
from trainer.train import TrainingError, TrainingResult, train

METRIC_NAMES = {"precision", "recall", "f1", "accuracy", "roc_auc"}


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[..., Settings]:
    """Return a factory of settings that share one store, experiment and registered model.

    Keyword arguments override training settings.
    """
    shared = make_training_settings(tmp_path).training
    names = {"experiment": shared.experiment, "registered_model": shared.registered_model}
    return lambda **training: make_training_settings(tmp_path, **{**names, **training})


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, TrainingResult]:
    """Train once into a fresh store, from a working directory that is not the repository."""
    directory = tmp_path_factory.mktemp("first-run")
    settings = make_training_settings(directory)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(directory)
        result = train(settings)
    return settings, result


def test_train_registers_first_version(first_run: tuple[Settings, TrainingResult]) -> None:
    settings, result = first_run
    client = MlflowClient(settings.model.tracking_uri)

    version = client.get_model_version(settings.training.registered_model, str(result.version))

    assert result.version == 1
    assert version.status == "READY"
    assert version.run_id == result.run_id


def test_train_first_version_gets_alias(first_run: tuple[Settings, TrainingResult]) -> None:
    settings, result = first_run
    client = MlflowClient(settings.model.tracking_uri)

    aliased = client.get_model_version_by_alias(
        settings.training.registered_model, settings.training.alias
    )

    assert result.alias_moved is True
    assert result.previous_alias_version is None
    assert int(aliased.version) == result.version


def test_train_logs_metrics_and_params(first_run: tuple[Settings, TrainingResult]) -> None:
    settings, result = first_run

    run = MlflowClient(settings.model.tracking_uri).get_run(result.run_id)

    assert set(run.data.metrics) == METRIC_NAMES
    assert run.data.metrics == pytest.approx(result.metrics)
    assert result.metrics["f1"] > 0.5
    assert run.data.params["n_estimators"] == "10"
    assert run.data.params["data_path"] == str(settings.training.data_path)


def test_train_signature_input_is_message(first_run: tuple[Settings, TrainingResult]) -> None:
    settings, result = first_run
    mlflow.set_tracking_uri(settings.model.tracking_uri)

    info = mlflow.models.get_model_info(
        f"models:/{settings.training.registered_model}/{result.version}"
    )

    assert info.signature is not None
    assert info.signature.inputs.input_names() == ["message"]
    assert info.signature.inputs.to_dict() == [
        {"type": "string", "name": "message", "required": True}
    ]
    assert info.flavors["sklearn"]["serialization_format"] == "skops"


def test_train_artifacts_stay_in_state_dir(first_run: tuple[Settings, TrainingResult]) -> None:
    settings, _ = first_run
    working_directory = settings.state_dir.parent

    artifacts = list((settings.state_dir / "artifacts").rglob("MLmodel"))

    assert len(artifacts) == 1
    assert not (working_directory / "mlruns").exists()


def test_registered_version_loads_in_fresh_process(
    first_run: tuple[Settings, TrainingResult],
) -> None:
    settings, _ = first_run
    uri = f"models:/{settings.training.registered_model}@{settings.training.alias}"
    script = (
        "import sys, mlflow, mlflow.sklearn, pandas as pd\n"
        "mlflow.set_tracking_uri(sys.argv[1])\n"
        "model = mlflow.sklearn.load_model(sys.argv[2])\n"
        "frame = pd.DataFrame({'message': ['WIN a free prize, call now', 'see you at lunch']})\n"
        "spam = list(model.classes_).index('spam')\n"
        "print(list(model.classes_), model.predict_proba(frame)[:, spam].round(3).tolist())\n"
    )
    environment = {
        name: value
        for name, value in os.environ.items()
        if name != "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
    }

    completed = subprocess.run(
        [sys.executable, "-c", script, settings.model.tracking_uri, uri],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("['ham', 'spam'] [")


def test_train_below_min_f1_keeps_alias(settings_for: Callable[..., Settings]) -> None:
    first = train(settings_for())
    # Settings cap minimums at 1, so this gate holds back any version short of a perfect f1.
    gated_settings = settings_for(min_metrics={"f1": 1.0})

    second = train(gated_settings)

    client = MlflowClient(gated_settings.model.tracking_uri)
    aliased = client.get_model_version_by_alias(
        gated_settings.training.registered_model, gated_settings.training.alias
    )
    assert second.metrics["f1"] < 1.0
    assert second.version == first.version + 1
    assert second.alias_moved is False
    assert second.previous_alias_version == first.version
    assert int(aliased.version) == first.version
    assert (
        client.get_model_version(
            gated_settings.training.registered_model, str(second.version)
        ).status
        == "READY"
    )


def test_train_deleted_experiment_raises(tmp_path: Path) -> None:
    settings = make_training_settings(tmp_path)
    mlflow.set_tracking_uri(settings.model.tracking_uri)
    (tmp_path / "store").mkdir()
    mlflow.delete_experiment(mlflow.create_experiment(settings.training.experiment))

    expected = f"experiment '{settings.training.experiment}' is deleted"

    with pytest.raises(TrainingError, match=expected):
        train(settings)


def test_cli_train_prints_version_and_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_cli_environment(monkeypatch, tmp_path)
    data_path = write_sms_subset(tmp_path)

    result = CliRunner().invoke(
        cli, ["train", "--data", str(data_path), "--min-metric", "f1=0", "--alias", "candidate"]
    )

    assert result.exit_code == 0, result.output
    assert "version 1" in result.stdout.splitlines()[0]
    for name in METRIC_NAMES:
        assert f"  {name} " in result.stdout
    assert "gate: f1 " in result.stdout
    assert ", no champion -> promoted" in result.stdout
    assert "alias candidate: not set -> version 1" in result.stdout


def test_cli_train_gate_refusal_exits_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_cli_environment(monkeypatch, tmp_path)
    data_path = write_sms_subset(tmp_path)

    result = CliRunner().invoke(cli, ["train", "--data", str(data_path), "--min-metric", "f1=1"])

    assert result.exit_code == 0, result.output
    assert ", no champion -> rejected: f1 " in result.stdout
    assert "< min 1.0000\n" in result.stdout
    assert "alias champion: not set" in result.stdout.splitlines()


def test_cli_train_missing_data_exits_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_cli_environment(monkeypatch, tmp_path)
    missing = tmp_path / "absent.tsv"

    result = CliRunner().invoke(cli, ["train", "--data", str(missing)])

    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"error: training data {missing} not found")


def test_cli_train_invalid_env_exits_two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_cli_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("STREAMSCORE_TRAINING__N_ESTIMATORS", "abc")

    result = CliRunner().invoke(cli, ["train"])

    assert result.exit_code == 2
    assert "training.n_estimators" in result.stderr
    assert "STREAMSCORE_TRAINING__N_ESTIMATORS" in result.stderr


def test_trainer_module_runs_train_command() -> None:
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    completed = subprocess.run(
        [sys.executable, "-m", "trainer", "--help"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert "--min-metric" in completed.stdout
    assert "Usage: streamscore train" in completed.stdout
