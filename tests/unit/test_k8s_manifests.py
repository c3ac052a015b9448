"""The Kubernetes manifests in deploy/k8s: kinds, probes, settings, secrets and scaling limits."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamscore.kafka import consumer_config
from streamscore.settings import KafkaSettings, Settings, load_settings, read_config_file

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "k8s"

EXPECTED_KINDS = {
    "ConfigMap": "v1",
    "Deployment": "apps/v1",
    "Service": "v1",
    "TriggerAuthentication": "keda.sh/v1alpha1",
    "ScaledObject": "keda.sh/v1alpha1",
}

# Environment variables of the kafka.security settings that hold credentials.
SECRET_VARIABLES = {
    "STREAMSCORE_KAFKA__SECURITY__SASL_USERNAME",
    "STREAMSCORE_KAFKA__SECURITY__SASL_PASSWORD",
}

# KEDA's kafka trigger names the SASL mechanisms of librdkafka differently.
KEDA_SASL_MODES = {
    "PLAIN": "plaintext",
    "SCRAM-SHA-256": "scram_sha256",
    "SCRAM-SHA-512": "scram_sha512",
}

_QUANTITY_UNITS = {"": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6}


def _bytes(quantity: str) -> int:
    """Convert a Kubernetes memory quantity such as 512Mi to bytes."""
    match = re.fullmatch(r"(\d+)([A-Za-z]*)", quantity)
    assert match is not None, f"not a memory quantity: {quantity!r}"
    return int(match[1]) * _QUANTITY_UNITS[match[2]]


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    """Return every document of the kustomization's resources by kind."""
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text(encoding="utf-8"))
    documents: dict[str, dict[str, Any]] = {}
    for resource in kustomization["resources"]:
        text = (K8S_DIR / resource).read_text(encoding="utf-8")
        for document in yaml.safe_load_all(text):
            assert document["kind"] not in documents, f"two {document['kind']} documents"
            documents[document["kind"]] = document
    return documents


@pytest.fixture(scope="module")
def container(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    [worker] = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = worker
    return result


@pytest.fixture
def settings(
    manifests: dict[str, dict[str, Any]],
    container: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """Load the ConfigMap's settings with the Deployment's environment, as a worker pod does."""
    [(key, text)] = manifests["ConfigMap"]["data"].items()
    config_file = tmp_path / key
    config_file.write_text(text, encoding="utf-8")
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text("test CA\n", encoding="utf-8")
    # NOTE: without a kafka.security section in Settings the security variables are left out.
    # The secret tests below still check their names and sources.
    has_security = "security" in KafkaSettings.model_fields
    for variable in container["env"]:
        name = variable["name"]
        if name == "STREAMSCORE_CONFIG" or ("__SECURITY__" in name and not has_security):
            continue
        if name.endswith("__SSL_CA_LOCATION"):
            monkeypatch.setenv(name, str(ca_file))
        elif "valueFrom" in variable:
            monkeypatch.setenv(
                name, f"test value of {variable['valueFrom']['secretKeyRef']['key']}"
            )
        else:
            monkeypatch.setenv(name, variable["value"])
    return load_settings(config_file)


def test_manifests_kinds_and_api_versions(manifests: dict[str, dict[str, Any]]) -> None:
    found = {kind: document["apiVersion"] for kind, document in manifests.items()}

    assert found == EXPECTED_KINDS


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text(encoding="utf-8"))
    files = {path.name for path in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}

    assert set(kustomization["resources"]) == files


def test_configmap_yaml_is_a_valid_config(
    manifests: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    [(key, text)] = manifests["ConfigMap"]["data"].items()
    config_file = tmp_path / key
    config_file.write_text(text, encoding="utf-8")

    data = read_config_file(config_file)
    settings = load_settings(config_file)

    assert set(data) <= set(Settings.model_fields)
    assert settings.metrics.host == "0.0.0.0"  # noqa: S104 - probes reach the pod's address
    assert settings.logging.format == "json"


def test_deployment_config_path_points_at_configmap(
    manifests: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    environment = {variable["name"]: variable.get("value") for variable in container["env"]}
    volumes = manifests["Deployment"]["spec"]["template"]["spec"]["volumes"]
    [config_volume] = [volume for volume in volumes if "configMap" in volume]
    [mount] = [
        mount for mount in container["volumeMounts"] if mount["name"] == config_volume["name"]
    ]
    [key] = manifests["ConfigMap"]["data"]

    assert config_volume["configMap"]["name"] == manifests["ConfigMap"]["metadata"]["name"]
    assert environment["STREAMSCORE_CONFIG"] == f"{mount['mountPath']}/{key}"


def test_deployment_environment_loads_settings(settings: Settings) -> None:
    assert settings.metrics.port == 9400
    if "security" in KafkaSettings.model_fields:
        security = settings.kafka.security
        assert security.protocol == "SASL_SSL"
        assert security.sasl_password.get_secret_value() == "test value of password"


def test_deployment_credentials_come_from_secret(container: dict[str, Any]) -> None:
    variables = {variable["name"]: variable for variable in container["env"]}

    for name in SECRET_VARIABLES:
        assert "value" not in variables[name], f"{name} is written in the manifest"
        assert variables[name]["valueFrom"]["secretKeyRef"]["name"] == "streamscore-kafka"


def test_deployment_ca_file_mounted_from_secret(
    manifests: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    variables = {variable["name"]: variable.get("value") for variable in container["env"]}
    ca_path = Path(variables["STREAMSCORE_KAFKA__SECURITY__SSL_CA_LOCATION"])
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == str(ca_path.parent)]
    volumes = manifests["Deployment"]["spec"]["template"]["spec"]["volumes"]
    [volume] = [volume for volume in volumes if volume["name"] == mount["name"]]

    assert volume["secret"]["secretName"] == "streamscore-kafka"
    assert [item["path"] for item in volume["secret"]["items"]] == [ca_path.name]


@pytest.mark.parametrize(
    ("probe", "path"), [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]
)
def test_deployment_probe_paths(
    container: dict[str, Any], settings: Settings, probe: str, path: str
) -> None:
    http_get = container[probe]["httpGet"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}

    assert http_get["path"] == path
    assert ports[http_get["port"]] == settings.metrics.port


def test_deployment_resources_fit_benchmark(container: dict[str, Any]) -> None:
    resources = container["resources"]

    # `make bench`: one worker peaked at 389 MB RSS and kept one core busy.
    assert _bytes(resources["requests"]["memory"]) >= 400 * 10**6
    assert resources["requests"]["cpu"] == "1"
    assert _bytes(resources["limits"]["memory"]) > _bytes(resources["requests"]["memory"])


def test_service_selects_worker_pods(manifests: dict[str, dict[str, Any]]) -> None:
    service = manifests["Service"]["spec"]
    pod_labels = manifests["Deployment"]["spec"]["template"]["metadata"]["labels"]

    assert service["selector"].items() <= pod_labels.items()
    assert [port["targetPort"] for port in service["ports"]] == ["metrics"]


def test_scaledobject_capped_at_partition_count(
    manifests: dict[str, dict[str, Any]], settings: Settings
) -> None:
    spec = manifests["ScaledObject"]["spec"]

    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert spec["maxReplicaCount"] <= settings.topics.partitions


def test_scaledobject_targets_worker_deployment(manifests: dict[str, dict[str, Any]]) -> None:
    spec = manifests["ScaledObject"]["spec"]

    assert spec["scaleTargetRef"]["name"] == manifests["Deployment"]["metadata"]["name"]


def test_scaledobject_trigger_matches_settings(
    manifests: dict[str, dict[str, Any]], settings: Settings
) -> None:
    [trigger] = manifests["ScaledObject"]["spec"]["triggers"]
    metadata = trigger["metadata"]
    consumer = consumer_config(settings.kafka, settings.worker.group_id)

    assert trigger["type"] == "kafka"
    assert metadata["bootstrapServers"] == settings.kafka.bootstrap_servers
    assert metadata["consumerGroup"] == settings.worker.group_id
    assert metadata["topic"] == settings.topics.input
    assert metadata["offsetResetPolicy"] == consumer["auto.offset.reset"]
    assert int(metadata["lagThreshold"]) > 0


def test_scaledobject_authentication_matches_worker(
    manifests: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    [trigger] = manifests["ScaledObject"]["spec"]["triggers"]
    variables = {variable["name"]: variable.get("value") for variable in container["env"]}
    authentication = manifests["TriggerAuthentication"]
    mechanism = variables["STREAMSCORE_KAFKA__SECURITY__SASL_MECHANISM"]

    assert trigger["authenticationRef"]["name"] == authentication["metadata"]["name"]
    assert {ref["name"] for ref in authentication["spec"]["secretTargetRef"]} == {
        "streamscore-kafka"
    }
    assert trigger["metadata"]["sasl"] == KEDA_SASL_MODES[mechanism]
    assert (trigger["metadata"]["tls"] == "enable") == variables[
        "STREAMSCORE_KAFKA__SECURITY__PROTOCOL"
    ].endswith("SSL")


def test_deployment_runs_as_image_user(manifests: dict[str, dict[str, Any]]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    security_context = manifests["Deployment"]["spec"]["template"]["spec"]["securityContext"]

    assert f"ARG APP_UID={security_context['runAsUser']}\n" in dockerfile
    assert "USER $APP_UID\n" in dockerfile
    assert security_context["runAsNonRoot"] is True
