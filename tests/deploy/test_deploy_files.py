"""The deployment files in deploy/: they parse, pin their images, and name real things.

Real routes of the app, real CLI subcommands, real metric and label names of
router/metrics.py: a renamed route, command or metric breaks these tests, not production.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fastapi.routing
import pytest
import sqlalchemy
import yaml
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from pydantic import SecretStr
from starlette.routing import Route

import router.metrics
from config.app import create_app
from consumers.probes import WorkerProbes
from router.broker import BrokerAdmin
from router.cli import _parser
from router.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "webhook-router.json"
GRAFANA_PROVISIONING = DEPLOY / "grafana" / "provisioning"
ENV_EXAMPLE = DEPLOY / ".env.example"
SECRET_NAME = "webhook-router-secrets"
SECRET_KEYS = {"ROUTER_AMQP_URL", "ROUTER_DATABASE_URL", "ROUTER_ENCRYPTION_KEYS"}
CONFIG_MAP_NAME = "webhook-router-config"
ROUTER_IMAGE = "webhook-router"
DEAD_BROKER_URL = "amqp://guest:guest@127.0.0.1:1/"
# A name, a tag that is not "latest" and holds a digit (a version), an optional digest.
PINNED_IMAGE = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9._/-]*):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]*)"
    r"(@sha256:[0-9a-f]{64})?$"
)
SCRAPE_LABELS = {"job", "instance"}


# ---------------------------------------------------------------- loading


def yaml_files() -> list[Path]:
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert files, "no YAML under deploy/"
    return files


def load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def load_one(path: Path) -> Any:
    docs = load_all(path)
    assert len(docs) == 1, f"{path}: expected one YAML document, got {len(docs)}"
    return docs[0]


def kubernetes_objects() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_all(path):
            assert isinstance(doc, dict), f"{path}: not a mapping"
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), f"{path}: not an object"
            objects.append(doc)
    return objects


def find(kind: str, name: str) -> dict[str, Any]:
    matches = [
        obj
        for obj in kubernetes_objects()
        if obj["kind"] == kind and obj["metadata"]["name"] == name
    ]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in kubernetes_objects():
        if obj["kind"] in {"Deployment", "Job"}:
            yield obj["metadata"]["name"], obj["spec"]["template"]["spec"]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def compose() -> dict[str, Any]:
    doc = load_one(COMPOSE)
    assert isinstance(doc, dict)
    return doc


def compose_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    return services


def router_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose_services().items()
        if service.get("image", "").split(":")[0] == ROUTER_IMAGE
    }


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile(keyword: str) -> list[str]:
    return [rest for kw, rest in dockerfile_instructions() if kw == keyword]


# ---------------------------------------------------------------- the real things


def app_routes() -> set[str]:
    """Paths the real app answers GET on (probes and scrapes are GETs)."""
    settings = Settings(database_url=SecretStr("sqlite://"))
    engine = sqlalchemy.create_engine("sqlite://")
    try:
        app = create_app(settings, engine, BrokerAdmin(DEAD_BROKER_URL))
        # FastAPI 0.16x keeps included routers as one lazy entry of app.routes each and
        # flattens them with iter_route_contexts; older versions copied their routes in.
        flatten = getattr(fastapi.routing, "iter_route_contexts", None)
        entries: list[Any] = list(flatten(app.routes)) if flatten is not None else list(app.routes)
        paths = {
            str(entry.path)
            for entry in entries
            if isinstance(getattr(entry, "original_route", entry), Route)
            and "GET" in (getattr(entry, "methods", None) or ())
        }
    finally:
        engine.dispose()
    assert "/openapi.json" in paths, "could not read the app's routes"
    return paths


def default_port() -> int:
    args = _parser().parse_args(["api"])
    port: int = args.port
    return port


def worker_routes() -> set[str]:
    """Paths a standalone worker answers on its metrics port (consumers/probes.py)."""
    probes = WorkerProbes(SimpleNamespace(ready=None), sqlalchemy.create_engine("sqlite://"), "", 0)
    return {resource.canonical for resource in probes.app.router.resources()}


def router_metrics() -> dict[str, set[str]]:
    """Every exposed series name of router/metrics.py, with the label names it takes."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
    }
    names: dict[str, set[str]] = {}
    metrics = [m for m in vars(router.metrics).values() if isinstance(m, MetricWrapperBase)]
    assert metrics, "router/metrics.py defines no metric"
    for metric in metrics:
        labels = set(metric._labelnames)
        for family in metric.describe():
            for suffix in suffixes[family.type]:
                extra = {"le"} if suffix == "_bucket" else set()
                names[family.name + suffix] = labels | extra
    return names


def parses_as_cli(argv: list[str]) -> bool:
    try:
        parsed = _parser().parse_args(argv)
    except SystemExit:
        return False
    return isinstance(parsed, argparse.Namespace) and callable(getattr(parsed, "handler", None))


# ---------------------------------------------------------------- PromQL


PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
}
IDENTIFIER = re.compile(r"(?<![\w$.{\"'])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w(\"'])")


def strip_strings(expr: str) -> str:
    return re.sub(r'"[^"]*"', '""', expr)


def metric_names(expr: str) -> set[str]:
    """Identifiers in metric position: not functions, keywords, labels, durations."""
    text = strip_strings(expr)
    text = re.sub(r"\{[^}]*\}", "{}", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "[]", text)  # ranges
    text = re.sub(r"\s*\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)\s*", "", text)
    return {
        name
        for name in IDENTIFIER.findall(text)
        if name not in PROMQL_WORDS and not re.fullmatch(r"\d+\w*", name)
    }


def label_uses(expr: str) -> list[tuple[str | None, str]]:
    """(metric or None for grouping, label) for every label an expression names."""
    text = strip_strings(expr)
    uses: list[tuple[str | None, str]] = []
    for metric, matchers in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", text):
        for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers):
            uses.append((metric, label))
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", text):
        uses.extend((None, label.strip()) for label in group.split(",") if label.strip())
    return uses


def check_expression(expr: str, known: dict[str, set[str]]) -> list[str]:
    problems = []
    names = metric_names(expr)
    if not names:
        problems.append(f"no metric in {expr!r}")
    for name in names:
        if name not in known and not name.startswith("rabbitmq_") and name != "up":
            problems.append(f"unknown metric {name!r} in {expr!r}")
    router_names = [n for n in names if n in known]
    for metric, label in label_uses(expr):
        if metric is not None:
            allowed = known.get(metric)
            if allowed is not None and label not in allowed | SCRAPE_LABELS:
                problems.append(f"{metric} has no label {label!r} in {expr!r}")
        elif router_names and not any(n.startswith("rabbitmq_") for n in names):
            union = set().union(*(known[n] for n in router_names)) | SCRAPE_LABELS
            if label not in union:
                problems.append(f"no metric of {expr!r} has the label {label!r}")
    return problems


def dashboard() -> dict[str, Any]:
    doc = json.loads(DASHBOARD.read_text())
    assert isinstance(doc, dict)
    return doc


def dashboard_exprs() -> list[str]:
    exprs = [
        target["expr"]
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    assert exprs, "dashboard has no expressions"
    return exprs


def alert_rules() -> list[dict[str, Any]]:
    doc = load_one(ALERTS)
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    assert rules
    return rules


# ---------------------------------------------------------------- tests: files parse


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    assert load_all(path), f"{path} is empty"


def test_dashboard_json_parses_with_panels_and_datasource() -> None:
    doc = dashboard()
    assert doc["uid"]
    assert doc["title"]
    datasource = load_one(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")
    uids = {source["uid"] for source in datasource["datasources"]}
    panel_ids = [panel["id"] for panel in doc["panels"]]
    assert len(panel_ids) == len(set(panel_ids))
    for panel in doc["panels"]:
        assert panel["datasource"]["uid"] in uids, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids, panel["title"]


def test_the_test_helpers_catch_unknown_names() -> None:
    """The checks below would see a typo: an unknown metric, a wrong label, a bad command."""
    known = router_metrics()
    assert check_expression("rate(webhook_router_deliveries_total[5m])", known) == []
    assert check_expression("rate(webhook_router_deliveries[5m])", known)
    assert check_expression('sum(webhook_router_deliveries_total{status="x"})', known)
    assert check_expression("sum by (webhook) (webhook_router_retries_total)", known)
    assert check_expression("sum(nonexistent_metric)", known)
    assert not parses_as_cli(["deploy"])
    assert not parses_as_cli(["db"])
    assert parses_as_cli(["topology", "sync"])
    assert not PINNED_IMAGE.match("postgres")


# ---------------------------------------------------------------- tests: images


def all_images() -> list[tuple[str, str]]:
    images = [(f"Dockerfile FROM {rest}", rest.split()[0]) for rest in dockerfile("FROM")]
    images += [
        (f"compose service {name}", service["image"])
        for name, service in compose_services().items()
    ]
    images += [
        (f"kubernetes {name}/{container['name']}", container["image"])
        for name, pod in pod_specs()
        for container in containers(pod)
    ]
    return images


@pytest.mark.parametrize(("where", "image"), all_images())
def test_every_image_has_an_explicit_version_tag(where: str, image: str) -> None:
    match = PINNED_IMAGE.match(image)
    assert match, f"{where}: {image!r} has no explicit tag"
    assert match["tag"] != "latest", f"{where}: {image!r} uses latest"
    assert re.search(r"\d", match["tag"]), f"{where}: {image!r} tag is not a version"


def test_compose_services_all_have_an_image() -> None:
    for name, service in compose_services().items():
        assert "image" in service, f"compose service {name} has no pinned image"


# ---------------------------------------------------------------- tests: Dockerfile


def test_dockerfile_is_multi_stage_and_pins_its_base() -> None:
    froms = dockerfile("FROM")
    assert len(froms) >= 2, "expected a build stage and a runtime stage"
    for rest in froms:
        image = rest.split()[0]
        assert image.startswith("python:3.11"), image
        tag = image.split(":", 1)[1]
        assert re.match(r"3\.11\.\d+", tag), f"base {image} not pinned to a patch release"


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = dockerfile("USER")
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user == "10001"


def test_dockerfile_installs_without_dev_extras_and_sets_python_env() -> None:
    text = DOCKERFILE.read_text()
    assert "pip install" in text
    assert "[dev]" not in text
    env = " ".join(dockerfile("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env


def test_dockerfile_entrypoint_cmd_port_and_healthcheck() -> None:
    entrypoint = json.loads(dockerfile("ENTRYPOINT")[-1])
    cmd = json.loads(dockerfile("CMD")[-1])
    assert entrypoint == ["webhook-router"]
    assert cmd[:1] == ["serve"]
    assert parses_as_cli(cmd)
    assert "--host" in cmd
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    port = default_port()
    assert dockerfile("EXPOSE") == [str(port)]
    healthcheck = dockerfile("HEALTHCHECK")[-1]
    assert "curl" not in healthcheck
    assert "python" in healthcheck
    urls = re.findall(r"http://[^:/]+:(\d+)(/[\w/-]*)", healthcheck)
    assert urls, healthcheck
    for url_port, path in urls:
        assert int(url_port) == port
        assert path in app_routes()


# ---------------------------------------------------------------- tests: CLI commands


def compose_commands() -> list[tuple[str, list[str]]]:
    commands = []
    for name, service in router_services().items():
        command = service.get("command")
        assert command, f"compose service {name} runs no command"
        entrypoint = service.get("entrypoint")
        if entrypoint is None:
            commands.append((name, list(command)))
            continue
        assert entrypoint == ["/bin/sh", "-c"], f"{name}: unexpected entrypoint"
        script = command[0] if isinstance(command, list) else command
        for part in script.split("&&"):
            words = shlex.split(part)
            assert words[0] == "webhook-router", f"{name}: {part!r}"
            commands.append((name, words[1:]))
    return commands


def kubernetes_commands() -> list[tuple[str, list[str]]]:
    commands = []
    for name, pod in pod_specs():
        for container in containers(pod):
            assert "command" not in container, "the image's ENTRYPOINT is webhook-router"
            commands.append((f"{name}/{container['name']}", list(container["args"])))
    return commands


@pytest.mark.parametrize(("where", "argv"), compose_commands() + kubernetes_commands())
def test_every_webhook_router_command_is_a_real_subcommand(where: str, argv: list[str]) -> None:
    assert parses_as_cli(argv), f"{where}: webhook-router {shlex.join(argv)} does not parse"


def test_compose_runs_migrate_then_api_and_workers() -> None:
    services = compose_services()
    assert compose_commands().count(("migrate", ["db", "upgrade"])) == 1
    assert ("migrate", ["topology", "sync"]) in compose_commands()
    assert services["api"]["command"][0] == "api"
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    for name in ("rabbitmq", "postgres"):
        assert services["migrate"]["depends_on"][name]["condition"] == "service_healthy"


# ---------------------------------------------------------------- tests: compose details


def test_compose_worker_health_is_its_readiness_and_it_gets_its_grace_period() -> None:
    worker = compose_services()["worker"]
    port = worker["environment"]["ROUTER_METRICS_PORT"]
    ((url_port, path),) = re.findall(
        r"http://127\.0\.0\.1:(\d+)(/[\w/-]*)", " ".join(worker["healthcheck"]["test"])
    )
    assert (url_port, path) == (port, "/readyz")
    assert path in worker_routes()
    # Docker's stop timeout must outlast the worker's own deadline for in-flight deliveries.
    grace_s = Settings().shutdown_grace_s
    assert int(worker["stop_grace_period"].removesuffix("s")) > grace_s


def test_rabbitmq_has_prometheus_plugin_and_a_high_nofile_limit() -> None:
    rabbitmq = compose_services()["rabbitmq"]
    assert rabbitmq["image"].startswith("rabbitmq:3.13.")
    assert rabbitmq["image"].endswith("-management")
    assert rabbitmq["ulimits"]["nofile"] == {"soft": 65536, "hard": 65536}
    mounts = {m.split(":")[1]: m.split(":")[0] for m in rabbitmq["volumes"]}
    plugins_file = DEPLOY / mounts["/etc/rabbitmq/enabled_plugins"]
    plugins = plugins_file.read_text().strip()
    assert plugins.endswith("].")
    assert "rabbitmq_prometheus" in plugins
    assert "rabbitmq_management" in plugins


def test_compose_commits_no_literal_secret() -> None:
    secretish = re.compile(r"PASSWORD|PASS$|KEYS?$|_URL$|SECRET")
    variables: set[str] = set()
    for name, service in compose_services().items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: use a mapping for environment"
        for key, value in environment.items():
            if secretish.search(key):
                match = re.fullmatch(r"\$\{(\w+):\?[^}]*\}", str(value))
                assert match, f"{name}: {key} is written in compose.yaml, not taken from .env"
                variables.add(match[1])
    assert {"ROUTER_ENCRYPTION_KEYS", "ROUTER_DATABASE_URL", "POSTGRES_PASSWORD"} <= variables
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert variables <= example.keys(), variables - example.keys()
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


def test_prometheus_scrapes_the_router_and_rabbitmq_and_loads_the_alerts() -> None:
    config = load_one(PROMETHEUS)
    prometheus = compose_services()["prometheus"]
    mounts = {m.split(":")[0]: m.split(":")[1] for m in prometheus["volumes"]}
    assert mounts["./prometheus/prometheus.yml"] in " ".join(prometheus["command"])
    assert mounts["./prometheus/alerts.yml"] in config["rule_files"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api = jobs["webhook-router-api"]
    assert api["metrics_path"] in app_routes()
    assert api["static_configs"][0]["targets"] == [f"api:{default_port()}"]
    worker = jobs["webhook-router-worker"]["dns_sd_configs"][0]
    worker_env = compose_services()["worker"]["environment"]
    assert worker["names"] == ["worker"]
    assert str(worker["port"]) == worker_env["ROUTER_METRICS_PORT"]
    assert jobs["rabbitmq"]["static_configs"][0]["targets"] == ["rabbitmq:15692"]


def test_grafana_provisions_the_dashboards_directory() -> None:
    grafana = compose_services()["grafana"]
    mounts = {m.split(":")[0]: m.split(":")[1] for m in grafana["volumes"]}
    provider = load_one(GRAFANA_PROVISIONING / "dashboards" / "webhook-router.yml")
    path = provider["providers"][0]["options"]["path"]
    assert mounts["./grafana/dashboards"] == path
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    datasource = load_one(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


# ---------------------------------------------------------------- tests: kubernetes


def test_api_probes_hit_real_routes_on_the_container_port() -> None:
    routes = app_routes()
    pod = find("Deployment", "webhook-router-api")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {port["containerPort"] for port in container["ports"]}
    args = container["args"]
    assert int(args[args.index("--port") + 1]) in ports
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in routes
        assert get["port"] in ports
    service = find("Service", "webhook-router-api")
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= ports
    labels = find("Deployment", "webhook-router-api")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_worker_probes_use_its_metrics_port_and_real_routes() -> None:
    config = find("ConfigMap", CONFIG_MAP_NAME)["data"]
    pod = find("Deployment", "webhook-router-worker")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in worker_routes()
        assert get["port"] == int(config["ROUTER_METRICS_PORT"])
        assert get["port"] in {port["containerPort"] for port in container["ports"]}


def test_every_pod_reads_the_secret_and_configmap_and_is_locked_down() -> None:
    for name, pod in pod_specs():
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["runAsUser"] != 0, name
        for container in containers(pod):
            where = f"{name}/{container['name']}"
            sources = container["envFrom"]
            assert {"secretRef": {"name": SECRET_NAME}} in sources, where
            assert {"configMapRef": {"name": CONFIG_MAP_NAME}} in sources, where
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), where
            assert {"cpu", "memory"} <= resources["limits"].keys(), where
            assert container["image"].split(":")[0] == ROUTER_IMAGE, where


def test_secrets_stay_out_of_the_configmap() -> None:
    config = find("ConfigMap", CONFIG_MAP_NAME)["data"]
    assert not SECRET_KEYS & config.keys()
    assert all(key.startswith("ROUTER_") for key in config)
    fields = set(Settings.model_fields)
    for key in config:
        assert key.removeprefix("ROUTER_").lower() in fields, f"{key} is no setting"
    example = find("Secret", SECRET_NAME)
    assert set(example["stringData"]) == SECRET_KEYS


def test_migrate_job_upgrades_then_syncs() -> None:
    pod = find("Job", "webhook-router-migrate")["spec"]["template"]["spec"]
    assert [c["args"] for c in pod["initContainers"]] == [["db", "upgrade"]]
    assert [c["args"] for c in pod["containers"]] == [["topology", "sync"]]
    assert pod["restartPolicy"] in {"OnFailure", "Never"}


def test_worker_hpa_scales_on_a_real_backlog_metric() -> None:
    hpa = find("HorizontalPodAutoscaler", "webhook-router-worker")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "webhook-router-worker")
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] in {"External", "Object"}
    name = metric[metric["type"].lower()]["metric"]["name"]
    assert name in router_metrics()
    assert "backlog" in name


def test_kustomization_lists_existing_files() -> None:
    kustomization = load_one(KUBERNETES / "kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (KUBERNETES / resource).is_file(), resource
    assert "secret.example.yaml" not in kustomization["resources"]


# ---------------------------------------------------------------- tests: metrics


def test_dashboard_uses_only_real_metrics_and_labels() -> None:
    known = router_metrics()
    problems = [p for expr in dashboard_exprs() for p in check_expression(expr, known)]
    assert problems == []


def test_dashboard_covers_the_expected_panels() -> None:
    text = " ".join(dashboard_exprs())
    for needed in (
        "webhook_router_deliveries_total",
        "histogram_quantile",
        "webhook_router_delivery_duration_seconds_bucket",
        "webhook_router_retries_total",
        "webhook_router_dead_lettered_total",
        "webhook_router_circuits_open",
        "webhook_router_webhook_backlog_messages",
        "webhook_router_dead_letter_messages",
        "webhook_router_log_batch_rows_count",
        "webhook_router_log_write_errors_total",
        "rabbitmq_queue_messages_ready",
    ):
        assert needed in text, needed


def test_alert_rules_are_complete() -> None:
    doc = load_one(ALERTS)
    assert doc["groups"]
    for group in doc["groups"]:
        assert group["name"]
        assert group["rules"]
    names = []
    for rule in alert_rules():
        names.append(rule["alert"])
        assert rule["expr"].strip(), rule["alert"]
        assert re.fullmatch(r"\d+[smhd]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical", "info"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
    assert len(names) == len(set(names))


def test_alert_rules_use_only_real_metrics_and_labels() -> None:
    known = router_metrics()
    problems = [p for rule in alert_rules() for p in check_expression(rule["expr"], known)]
    assert problems == []


def test_alert_rules_cover_the_expected_conditions() -> None:
    text = " ".join(rule["expr"] for rule in alert_rules())
    for needed in (
        'outcome=~"retrying|dead_lettered"',
        "webhook_router_dead_lettered_total",
        "webhook_router_circuits_open",
        "webhook_router_webhook_backlog_messages",
        'up{job="webhook-router-worker"}',
        "webhook_router_messages_consumed_total",
    ):
        assert needed in text, needed


# --- promtool (Debian's prometheus package; `make test` installs it when missing) -------


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool not found: apt-get install prometheus (make test does it)")
    return subprocess.run(
        ["promtool", *args], input=stdin, capture_output=True, timeout=60, check=False
    )


def test_alert_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", str(DEPLOY / "prometheus" / "alerts.yml"))
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_alert_rules_unit_tests_pass() -> None:
    # Given alerts.test.yml: series that must (and must not) fire each alert
    result = promtool("test", "rules", str(DEPLOY / "prometheus" / "alerts.test.yml"))
    # Then promtool evaluates the rules over them and every expectation holds
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_metrics_exposition_passes_promtool_lint() -> None:
    # Given every metric the router defines, as /metrics exposes them
    exposition = generate_latest(REGISTRY)
    assert b"webhook_router_deliveries_total" in exposition
    # When promtool lints the exposition / Then it finds nothing to complain about
    result = promtool("check", "metrics", stdin=exposition)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == "", result.stdout.decode()
