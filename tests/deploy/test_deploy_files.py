"""The deployment files are valid without a container engine or a cluster.

- ``deploy/docker-compose.yml`` against the Compose Specification JSON Schema, plus what the
  schema cannot say: references resolve, secrets stay out of the environment, the worker is
  built from the top-level Dockerfile.
- ``deploy/k8s/*.yaml`` against the Kubernetes schemas shipped by ``kubernetes-validate``, plus
  hardening (non-root, read-only root filesystem, probes, resources).
- ``Dockerfile``: installs the project itself (so exactly pyproject's runtime dependencies),
  never the dev extra, from a slim Python base, as a non-root user.
- ``deploy/grafana`` and ``deploy/prometheus``: every metric an expression uses exists (hvlab's
  from ``hvlab.metrics.REGISTRY``, the SDK's and server's from a measured allowlist) and every
  hvlab metric has a panel; alert rules are complete.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client import generate_latest

from hvlab.metrics import REGISTRY, WORKFLOW_METRICS
from hvlab.specfile import parse_lab

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
DASHBOARD = DEPLOY / "grafana" / "hvlab-dashboard.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"

# An unmodified copy of shared/data/compose-spec.json (the Compose Specification JSON Schema,
# compose-spec project, Apache 2.0), vendored so a clean clone can run this test.
COMPOSE_SCHEMA = Path(__file__).with_name("compose-spec.json")

# Kubernetes release whose schemas the manifests must satisfy (kubernetes-validate 1.37 ships
# 1.25 to 1.37); strict mode also rejects unknown fields, which catches misspelt keys.
K8S_VERSION = "1.33.0"
# Not core Kubernetes kinds, so kubernetes-validate has no schema for them: the
# ServiceMonitor is a Prometheus Operator CRD, kustomization.yaml is kustomize's own file.
K8S_SKIPPED = {
    "servicemonitor.yaml": "monitoring.coreos.com/v1 ServiceMonitor is a CRD",
    "kustomization.yaml": "kustomize.config.k8s.io Kustomization is not a cluster resource",
}

# Metric names outside hvlab's registry that dashboards and alerts may use. Measured on
# 2026-11-26 by scraping a worker (temporalio 1.35, `hvlab worker` + `hvlab doctor` + a build
# whose hosts were unreachable, for the failure counters) and the Temporal 1.32 dev server's
# /metrics; `up` is Prometheus's own per-target metric. tests/runtime/test_dashboard_metrics.py
# checks the names the dashboard and the alerts use against a real worker's scrape.
SDK_METRICS = {
    "temporal_activity_execution_failed",
    "temporal_activity_execution_latency",
    "temporal_activity_schedule_to_start_latency",
    "temporal_activity_succeed_endtoend_latency",
    "temporal_activity_task_received",
    "temporal_long_request",
    "temporal_long_request_latency",
    "temporal_num_pollers",
    "temporal_request",
    "temporal_request_latency",
    "temporal_sticky_cache_hit",
    "temporal_sticky_cache_size",
    "temporal_worker_start",
    "temporal_worker_task_slots_available",
    "temporal_worker_task_slots_used",
    "temporal_workflow_completed",
    "temporal_workflow_endtoend_latency",
    "temporal_workflow_failed",
    "temporal_workflow_task_execution_latency",
    "temporal_workflow_task_queue_poll_succeed",
    "temporal_workflow_task_replay_latency",
    "temporal_workflow_task_schedule_to_start_latency",
}
SERVER_METRICS = {
    "service_requests",
    "service_latency",
    "persistence_latency",
    "persistence_requests",
}
PROMETHEUS_METRICS = {"up"}
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
SECRET_WORDS = ("PASSWORD", "PASSWD", "PWD", "TOKEN", "KEY", "SECRET")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- metric names


def hvlab_metric_names() -> dict[str, set[str]]:
    """hvlab's metric families as exposed -> every sample name of each: the activity metrics
    of ``REGISTRY`` (its ``# TYPE`` lines) and the workflow metrics the SDK meter exports
    (``WORKFLOW_METRICS``)."""
    kinds = dict(WORKFLOW_METRICS)
    for line in generate_latest(REGISTRY).decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            if name.endswith("_created"):
                continue  # only once a series exists, and the worker disables them
            kinds[name] = kind
    families: dict[str, set[str]] = {}
    for name, kind in kinds.items():
        samples = {name}
        if kind == "histogram":
            samples |= {name + suffix for suffix in HISTOGRAM_SUFFIXES}
        families[name] = samples
    return families


def known_metric_names() -> set[str]:
    names = set().union(*hvlab_metric_names().values()) | PROMETHEUS_METRICS
    for base in SDK_METRICS | SERVER_METRICS:
        names |= {base, *(base + suffix for suffix in HISTOGRAM_SUFFIXES)}
    return names


_PROMQL_FUNCTIONS_AND_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
    "atan2",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (strings, label matchers, ranges, grouping
    clauses, function calls and Grafana variables removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _PROMQL_FUNCTIONS_AND_KEYWORDS:
            continue
        names.add(word)
    return names


def test_promql_metric_name_extraction() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, step) (rate(hvlab_step_duration_seconds_bucket"
        '{outcome="error", host=~"SVR.*"}[$__rate_interval]))) / on(job) group_left up'
        " or vector(0)"
    )
    assert promql_metric_names(expr) == {"hvlab_step_duration_seconds_bucket", "up"}


def test_hvlab_registry_names_include_every_documented_metric() -> None:
    families = hvlab_metric_names()
    assert {
        "hvlab_step_duration_seconds",
        "hvlab_migrations_total",
        "hvlab_migration_duration_seconds",
        "hvlab_migration_downtime_seconds",
        "hvlab_compensations_total",
        "hvlab_replication_health",
        "hvlab_winrm_sessions_open",
        "hvlab_winrm_requests_total",
        "hvlab_worker_info",
    } <= set(families)
    assert "hvlab_step_duration_seconds_bucket" in families["hvlab_step_duration_seconds"]


# --------------------------------------------------------------------------- Compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(compose)
    ]
    assert not errors, "\n".join(errors)


def test_compose_has_the_whole_stack(compose: dict[str, Any]) -> None:
    images = {name: str(svc.get("image", "")) for name, svc in compose["services"].items()}
    assert images["postgresql"].startswith("postgres:")
    assert images["temporal"].startswith("temporalio/server:")
    assert images["temporal-schema"].startswith("temporalio/admin-tools:")
    assert images["temporal-ui"].startswith("temporalio/ui:")
    assert images["prometheus"].startswith("prom/prometheus:")
    assert images["grafana"].startswith("grafana/grafana:")
    assert compose["services"]["worker"]["command"] == ["worker"]
    assert compose["services"]["codec-server"]["command"] == ["codec-server"]


def test_compose_references_resolve(compose: dict[str, Any]) -> None:
    services = compose["services"]
    declared_volumes = set(compose.get("volumes") or {})
    declared_secrets = set(compose.get("secrets") or {})
    problems = []
    for name, svc in services.items():
        depends = svc.get("depends_on") or {}
        for dep in depends if isinstance(depends, list) else depends.keys():
            if dep not in services:
                problems.append(f"{name}: depends_on unknown service {dep}")
        for secret in svc.get("secrets") or []:
            source = secret if isinstance(secret, str) else secret["source"]
            if source not in declared_secrets:
                problems.append(f"{name}: secret {source} not declared")
        for volume in svc.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source")
            if not source or source.startswith("/"):
                continue
            if source.startswith("."):
                if not (DEPLOY / source).exists():
                    problems.append(f"{name}: bind source {source} missing under deploy/")
            elif source not in declared_volumes:
                problems.append(f"{name}: volume {source} not declared")
        for network in svc.get("networks") or []:
            if network not in (compose.get("networks") or {}):
                problems.append(f"{name}: network {network} not declared")
    assert not problems, "\n".join(problems)


def _environment(svc: dict[str, Any]) -> dict[str, str]:
    """A service's environment with ``${VAR:-default}`` interpolated to its default."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {
        key: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", "" if value is None else str(value))
        for key, value in env.items()
    }


def test_compose_environment_holds_no_literal_secret(compose: dict[str, Any]) -> None:
    """A secret-looking variable is a *_FILE path to a mounted Compose secret or a flag."""
    problems = []
    for name, svc in compose["services"].items():
        mounted = {
            s if isinstance(s, str) else s.get("target", s["source"])
            for s in svc.get("secrets") or []
        }
        for key, value in _environment(svc).items():
            if not any(word in key.upper() for word in SECRET_WORDS):
                continue
            if value.lower() in {"true", "false", ""}:
                continue
            if value.startswith("/run/secrets/"):
                if value.removeprefix("/run/secrets/") not in mounted:
                    problems.append(f"{name}: {key} points at a secret the service lacks")
                continue
            if not key.upper().endswith("FILE"):
                problems.append(f"{name}: {key} looks like a literal secret")
            else:
                problems.append(f"{name}: {key} is a file outside /run/secrets: {value}")
    assert not problems, "\n".join(problems)
    # The secret files themselves are never part of the repository.
    for secret in compose["secrets"].values():
        assert "file" in secret and "environment" not in secret


def test_compose_services_have_healthchecks_and_named_volumes(compose: dict[str, Any]) -> None:
    one_shot = {"temporal-schema", "temporal-namespace"}
    for name, svc in compose["services"].items():
        if name not in one_shot:
            assert "healthcheck" in svc, f"{name} has no healthcheck"
    assert {"postgres-data", "prometheus-data", "grafana-data"} <= set(compose["volumes"])


def test_compose_worker_builds_the_top_level_dockerfile(compose: dict[str, Any]) -> None:
    for name in ("worker", "codec-server"):
        build = compose["services"][name]["build"]
        assert (DEPLOY / build["context"]).resolve() == ROOT
        assert (DEPLOY / build["context"] / build.get("dockerfile", "Dockerfile")).resolve() == (
            DOCKERFILE
        )
    worker_env = _environment(compose["services"]["worker"])
    assert worker_env["HVLAB_METRICS_ADDRESS"] == "0.0.0.0:9464"
    assert worker_env["HVLAB_CODEC_ENABLED"] == "true"
    assert worker_env["HVLAB_LOG_FORMAT"] == "json"


def test_compose_temporal_gets_the_dynamic_config(compose: dict[str, Any]) -> None:
    from hvlab.devstack import DYNAMIC_CONFIG

    temporal = compose["services"]["temporal"]
    target = _environment(temporal)["DYNAMIC_CONFIG_FILE_PATH"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in temporal["volumes"]}
    config = load_yaml(DEPLOY / mounts[target])
    for key, value in DYNAMIC_CONFIG.items():
        assert config[key][0]["value"] == value, key
    ui_env = _environment(compose["services"]["temporal-ui"])
    assert ui_env["TEMPORAL_CODEC_ENDPOINT"].startswith("http")


# --------------------------------------------------------------------------- Kubernetes


def k8s_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name in K8S_SKIPPED:
            continue
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                yield f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc


K8S_DOCS = dict(k8s_documents())


def test_every_kubernetes_file_is_validated_or_skipped_for_a_reason() -> None:
    validated = {key.split(":")[0] for key in K8S_DOCS}
    for path in K8S.glob("*.yaml"):
        assert path.name in validated or path.name in K8S_SKIPPED
    assert {doc["kind"] for doc in K8S_DOCS.values()} >= {
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "Namespace",
    }


@pytest.mark.parametrize("key", sorted(K8S_DOCS))
def test_kubernetes_manifest_matches_the_schema(key: str) -> None:
    try:
        kubernetes_validate.validate(K8S_DOCS[key], K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = "/".join(map(str, error.path))
        pytest.fail(f"{key}: {path}: {error.message}")


def _deployments() -> dict[str, dict[str, Any]]:
    return {k: d for k, d in K8S_DOCS.items() if d["kind"] == "Deployment"}


@pytest.mark.parametrize("key", sorted(_deployments()))
def test_kubernetes_deployment_is_hardened(key: str) -> None:
    pod = K8S_DOCS[key]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod.get("automountServiceAccountToken") is False
    mounts_needed = {"/tmp", "/var/lib/hvlab"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert "livenessProbe" in container and "readinessProbe" in container
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        mounted = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        for path in mounts_needed:
            assert "emptyDir" in volumes[mounted[path]], f"{path} must be an emptyDir"


def test_kubernetes_worker_probes_healthz_and_is_scraped() -> None:
    worker = K8S_DOCS["worker-deployment.yaml:Deployment/hvlab-worker"]
    assert worker["spec"]["replicas"] == 2
    template = worker["spec"]["template"]
    container = template["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz"
        assert ports.get(get["port"], get["port"]) == 9464
    assert template["metadata"]["annotations"]["prometheus.io/port"] == "9464"
    settings = K8S_DOCS["configmap.yaml:ConfigMap/hvlab-settings"]["data"]
    assert settings["HVLAB_METRICS_ADDRESS"].endswith(":9464")
    assert settings["HVLAB_CODEC_ENABLED"] == "true"
    labs_mount = next(m for m in container["volumeMounts"] if m["name"] == "labs")
    assert labs_mount["mountPath"] == settings["HVLAB_HOME"] + "/labs"


def test_kubernetes_lab_files_are_valid_labs() -> None:
    for name, text in K8S_DOCS["configmap.yaml:ConfigMap/hvlab-labs"]["data"].items():
        spec = parse_lab(text, source=name)
        assert name == f"{spec.lab}.yaml"


def test_kubernetes_secrets_are_placeholders_only() -> None:
    for key, doc in K8S_DOCS.items():
        if doc["kind"] == "Secret":
            assert "data" not in doc, f"{key}: use stringData placeholders"
            for field, value in doc["stringData"].items():
                assert "REPLACE-ME" in value, f"{key} {field} is not a placeholder"


# --------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def test_dockerfile_installs_the_project_runtime_dependencies_only() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    instructions = dockerfile_instructions()
    runs = " ; ".join(args for word, args in instructions if word == "RUN")
    # The project is installed (so pip reads [project] dependencies from pyproject.toml) ...
    installs = re.findall(r"pip install ([^;&|]+)", runs)
    assert installs, "no pip install in the Dockerfile"
    assert all('"$target"' in args or args.split()[-1] in {".", "/src"} for args in installs)
    assert 'target="."' in runs
    # ... nothing else by name, no requirements file, never the dev extra.
    assert "-r " not in runs and "requirements" not in runs
    assert "[dev]" not in DOCKERFILE.read_text(encoding="utf-8")
    extras = re.findall(r'target="\.\[(.*?)\]"', runs)
    assert extras == ["$HVLAB_EXTRAS"]
    assert "dev" in pyproject["project"]["optional-dependencies"]
    # Everything setuptools needs to build the distribution is copied in.
    copied = " ".join(args for word, args in instructions if word == "COPY")
    packages = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    needed = ["pyproject.toml", pyproject["project"]["readme"]]
    needed += [module + ".py" for module in pyproject["tool"]["setuptools"]["py-modules"]]
    needed += [pattern.rstrip("*") for pattern in packages]
    for item in needed:
        assert re.search(rf"(^|\s){re.escape(item)}(\s|$)", copied), f"{item} not copied"
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert ".venv" in ignored and ".git" in ignored
    assert not set(needed) & set(ignored)


def test_dockerfile_base_image_is_slim_and_user_is_not_root() -> None:
    instructions = dockerfile_instructions()
    args = dict(a.split("=", 1) for word, a in instructions if word == "ARG" and "=" in a)
    bases = [a.split()[0] for word, a in instructions if word == "FROM"]
    images = [args.get(b.strip("${}"), b) for b in bases]
    for image in images:
        assert re.fullmatch(r"python:3\.(1[1-9])-slim(-\w+)?", image), image
        minor = int(image.split(":")[1].split("-")[0].split(".")[1])
        assert minor >= 11  # requires-python >= 3.11
    users = [a for word, a in instructions if word == "USER"]
    assert users, "no USER: the image would run as root"
    assert users[-1].split(":")[0] not in {"0", "root"}
    entrypoint = [json.loads(a) for word, a in instructions if word == "ENTRYPOINT"][-1]
    cmd = [json.loads(a) for word, a in instructions if word == "CMD"][-1]
    assert entrypoint + cmd == ["hvlab", "worker"]
    env = " ".join(a for word, a in instructions if word == "ENV")
    assert "HVLAB_METRICS_ADDRESS=0.0.0.0:9464" in env


# --------------------------------------------------------------------------- Grafana


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def test_dashboard_panel_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in _panels(dashboard)]
    assert len(ids) == len(set(ids))


def test_dashboard_queries_use_known_metrics_only(dashboard: dict[str, Any]) -> None:
    known = known_metric_names()
    unknown = {
        f"{panel['title']}: {name}"
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
        for name in promql_metric_names(target["expr"])
        if name not in known
    }
    assert not unknown, sorted(unknown)


def test_every_hvlab_metric_has_a_panel(dashboard: dict[str, Any]) -> None:
    used = {
        name
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
        for name in promql_metric_names(target["expr"])
    }
    missing = [family for family, samples in hvlab_metric_names().items() if not samples & used]
    assert not missing, f"no panel for {missing}"


def test_dashboard_shows_the_sdk_essentials(dashboard: dict[str, Any]) -> None:
    exprs = " ".join(t["expr"] for p in _panels(dashboard) for t in p.get("targets", []))
    for needed in (
        "temporal_workflow_endtoend_latency_bucket",
        "temporal_activity_execution_latency_bucket",
        "temporal_activity_schedule_to_start_latency_bucket",
        "temporal_workflow_task_schedule_to_start_latency_bucket",
        "temporal_worker_task_slots_available",
        "temporal_worker_task_slots_used",
    ):
        assert needed in exprs, needed


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard(
    dashboard: dict[str, Any],
) -> None:
    datasources = load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")
    uid = datasources["datasources"][0]["uid"]
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    variable = dashboard["templating"]["list"][0]
    assert variable["type"] == "datasource" and variable["current"]["value"] == uid
    providers = load_yaml(DEPLOY / "grafana/provisioning/dashboards/hvlab.yml")
    path = providers["providers"][0]["options"]["path"]
    grafana = load_yaml(COMPOSE_FILE)["services"]["grafana"]
    assert any(v.startswith("./grafana/hvlab-dashboard.json:" + path) for v in grafana["volumes"])


# --------------------------------------------------------------------------- Prometheus


def test_alert_rules_are_complete_and_use_known_metrics() -> None:
    known = known_metric_names()
    rules = [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]
    assert rules
    for rule in rules:
        assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule), rule
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"].get("summary")
        unknown = promql_metric_names(rule["expr"]) - known
        assert not unknown, f"{rule['alert']}: {unknown}"
    exprs = " ".join(rule["expr"] for rule in rules)
    for needed in (
        'hvlab_migrations_total{outcome!~"ok|noop"}',
        "hvlab_replication_health",
        'up{job="hvlab-worker"} == 0',
        "temporal_activity_execution_failed",
    ):
        assert needed in exprs, needed


def test_prometheus_scrapes_the_workers_and_temporal_and_loads_the_rules() -> None:
    config = load_yaml(PROMETHEUS)
    assert Path(config["rule_files"][0]).name == ALERTS.name
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    worker = jobs["hvlab-worker"]["dns_sd_configs"][0]
    assert worker["names"] == ["worker"] and worker["port"] == 9464
    assert jobs["temporal-server"]["static_configs"][0]["targets"] == ["temporal:8000"]
    compose = load_yaml(COMPOSE_FILE)
    assert _environment(compose["services"]["temporal"])["PROMETHEUS_ENDPOINT"].endswith(":8000")
