"""The Docker Compose stack, its Prometheus configuration and the Grafana dashboard.

No Docker engine runs in the tests, so they check the files without one. docker-compose and
promtool parse them, and the tests check the start order that the depends_on conditions enforce.
Every PromQL query of the dashboard and the alert rules must name only metrics the worker exports.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.metrics import WorkerMetrics
from streamscore.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "streamscore.json"

ONE_SHOT_SERVICES = {"topics", "trainer", "publisher"}
LONG_RUNNING_SERVICES = {"kafka", "mlflow", "worker", "prometheus", "grafana"}

# (service, dependency, condition) that make the start order right.
START_ORDER = [
    ("topics", "kafka", "service_healthy"),
    ("trainer", "mlflow", "service_healthy"),
    ("worker", "kafka", "service_healthy"),
    ("worker", "topics", "service_completed_successfully"),
    ("worker", "mlflow", "service_healthy"),
    ("worker", "trainer", "service_completed_successfully"),
    ("publisher", "worker", "service_healthy"),
    ("grafana", "prometheus", "service_healthy"),
]

# Series names that each metric type adds to the name it is declared with.
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}

# Words of PromQL that are neither functions nor metric names.
_PROMQL_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "group_left",
    "group_right",
    "inf",
    "nan",
}


def _exported_series() -> set[str]:
    """Return every series name a worker can expose, from its registry."""
    names: set[str] = set()
    for family in WorkerMetrics().registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def _is_exported(name: str, exported: set[str]) -> bool:
    """Whether a worker scrape has this series: its own, prometheus_client's or Prometheus' up."""
    return name in exported or name == "up" or name.startswith(("process_", "python_"))


def metric_names(expr: str) -> set[str]:
    """Return the metric names a PromQL expression selects."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        word = match.group()
        is_call = expr[match.end() :].lstrip().startswith("(")
        if not is_call and word.lower() not in _PROMQL_KEYWORDS:
            names.add(word)
    return names


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = _load_yaml(COMPOSE_FILE)
    return data


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    return data


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield every panel that queries, including those inside rows."""
    for panel in dashboard["panels"]:
        yield from (child for child in panel.get("panels", []) if "targets" in child)
        if "targets" in panel:
            yield panel


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} not found on PATH; install it with `make test-deps`")
    return path


def _mount_source(service: dict[str, Any], target: str) -> Path:
    """Return the host path a service mounts at `target`."""
    for volume in service["volumes"]:
        source, mounted_at, *_ = volume.split(":")
        if mounted_at == target:
            return (ROOT / source).resolve()
    raise AssertionError(f"nothing is mounted at {target}; volumes: {service['volumes']}")


# Compose file


def test_compose_config_accepted_by_docker_compose() -> None:
    docker_compose = _require("docker-compose")

    result = subprocess.run(
        [docker_compose, "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr


def test_compose_has_every_service(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == ONE_SHOT_SERVICES | LONG_RUNNING_SERVICES


def test_compose_images_pinned_to_a_tag(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image")
        assert image, f"service {name} names no image"
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"service {name}: image {image!r} has no tag"
        assert tag != "latest", f"service {name}: image {image!r} is not pinned"


def test_compose_uses_official_images(compose: dict[str, Any]) -> None:
    services = compose["services"]

    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")


def test_compose_long_running_services_have_healthchecks(compose: dict[str, Any]) -> None:
    for name in LONG_RUNNING_SERVICES:
        healthcheck = compose["services"][name].get("healthcheck", {})
        assert healthcheck.get("test"), f"service {name} has no healthcheck"


def test_compose_one_shot_services_not_restarted(compose: dict[str, Any]) -> None:
    for name in ONE_SHOT_SERVICES:
        assert compose["services"][name].get("restart") == "no", name


@pytest.mark.parametrize(("service", "dependency", "condition"), START_ORDER)
def test_compose_depends_on_condition(
    compose: dict[str, Any], service: str, dependency: str, condition: str
) -> None:
    depends_on = compose["services"][service]["depends_on"]

    assert depends_on[dependency] == {"condition": condition}


def test_compose_worker_healthcheck_uses_readyz(compose: dict[str, Any]) -> None:
    test = " ".join(compose["services"]["worker"]["healthcheck"]["test"])

    assert f"127.0.0.1:{Settings().metrics.port}/readyz" in test


def test_compose_worker_replicas_fit_partitions(compose: dict[str, Any]) -> None:
    replicas = compose["services"]["worker"]["deploy"]["replicas"]

    assert replicas == 2
    assert replicas <= Settings().topics.partitions


def test_compose_mlflow_keeps_store_on_volume(compose: dict[str, Any]) -> None:
    mlflow = compose["services"]["mlflow"]
    command = " ".join(mlflow["command"])
    volume, _, mount = mlflow["volumes"][0].partition(":")

    assert volume in compose["volumes"]
    assert "--serve-artifacts" in command
    assert f"--backend-store-uri=sqlite:///{mount}/" in command
    assert f"--artifacts-destination={mount}/" in command


def test_compose_clients_use_mlflow_server(compose: dict[str, Any]) -> None:
    for name in ("trainer", "worker", "publisher"):
        environment = compose["services"][name]["environment"]
        assert environment["STREAMSCORE_MODEL__TRACKING_URI"] == "http://mlflow:5000", name
        assert environment["STREAMSCORE_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092", name


def test_compose_host_ports_bound_to_loopback(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"service {name} publishes {port!r}"


# Prometheus


def test_prometheus_config_accepted_by_promtool() -> None:
    promtool = _require("promtool")

    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_mounted_where_image_reads_it(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]

    assert _mount_source(prometheus, "/etc/prometheus") == PROMETHEUS_DIR


def test_prometheus_discovers_every_worker_replica(compose: dict[str, Any]) -> None:
    config = _load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "streamscore-worker"]
    [discovery] = job["dns_sd_configs"]

    assert discovery["names"] == ["worker"]
    assert "worker" in compose["services"]
    assert discovery["type"] == "A"
    assert discovery["port"] == Settings().metrics.port
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_prometheus_alerts_use_exported_metrics() -> None:
    exported = _exported_series()
    rules = _load_yaml(PROMETHEUS_DIR / "alerts.yml")

    for group in rules["groups"]:
        for rule in group["rules"]:
            for name in metric_names(rule["expr"]):
                assert _is_exported(name, exported), f"alert {rule['alert']} reads {name}"


# Grafana


def test_grafana_dashboard_has_required_panels(dashboard: dict[str, Any]) -> None:
    titles = {panel["title"] for panel in _panels(dashboard)}

    assert {
        "Throughput",
        "End-to-end latency",
        "Consumer lag per partition",
        "Dead letters by reason",
        "Model version served",
        "Feature drift (PSI)",
        "Drift alerts",
        "Rebalances and failures",
    } <= titles


def test_grafana_latency_panel_shows_percentiles(dashboard: dict[str, Any]) -> None:
    [panel] = [panel for panel in _panels(dashboard) if panel["title"] == "End-to-end latency"]
    expressions = [target["expr"] for target in panel["targets"]]

    for quantile in ("0.5", "0.95", "0.99"):
        assert any(expr.startswith(f"histogram_quantile({quantile},") for expr in expressions)
    assert panel["fieldConfig"]["defaults"]["unit"] == "s"


def test_grafana_queries_use_exported_metrics(dashboard: dict[str, Any]) -> None:
    exported = _exported_series()

    for panel in _panels(dashboard):
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, f"panel {panel['title']!r}: no metric in {target['expr']!r}"
            for name in names:
                assert _is_exported(name, exported), f"panel {panel['title']!r} reads {name}"


def test_grafana_queries_parse_as_promql(dashboard: dict[str, Any], tmp_path: Path) -> None:
    promtool = _require("promtool")
    # promtool parses the expression of each recording rule; Grafana replaces $__rate_interval
    # with a duration before it sends a query.
    rules = [
        {"record": f"dashboard:panel_{panel['id']}:{target['refId']}", "expr": target["expr"]}
        for panel in _panels(dashboard)
        for target in panel["targets"]
    ]
    text = yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    rules_file = tmp_path / "dashboard-rules.yml"
    rules_file.write_text(text.replace("$__rate_interval", "1m"), encoding="utf-8")

    result = subprocess.run(
        [promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_panels_use_provisioned_datasource(
    dashboard: dict[str, Any], compose: dict[str, Any]
) -> None:
    provisioning = _load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    [datasource] = provisioning["datasources"]

    assert datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in compose["services"]
    for panel in _panels(dashboard):
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]


def test_grafana_dashboard_folder_mounted_where_provider_reads(compose: dict[str, Any]) -> None:
    provisioning = _load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "streamscore.yml")
    [provider] = provisioning["providers"]
    grafana = compose["services"]["grafana"]

    assert _mount_source(grafana, provider["options"]["path"]) == DASHBOARD_FILE.parent
    assert _mount_source(grafana, "/etc/grafana/provisioning") == GRAFANA_DIR / "provisioning"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("sum(rate(a_total[5m]))", {"a_total"}),
        ('sum by (le) (rate(b_bucket{job="x"}[$__rate_interval]))', {"b_bucket"}),
        ("histogram_quantile(0.99, sum by (le) (rate(c_bucket[1m])))", {"c_bucket"}),
        ("x / on (instance) group_left y > bool 0", {"x", "y"}),
        ("up == 0", {"up"}),
    ],
)
def test_metric_names_found_in_promql(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected
