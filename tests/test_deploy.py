"""docker-compose.yml cannot run here (no Docker engine), so these checks keep it honest
against the code: settings it sets exist, search attributes it registers are ours, the
commands it runs are real, and the image holds every package the project ships."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from handoff import search_attributes
from handoff.cli import app
from handoff.config import Settings

ROOT = Path(__file__).parent.parent


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_temporal_ui_postgresql_worker_and_api() -> None:
    assert {"postgresql", "temporal", "temporal-ui", "worker", "api"} <= set(compose()["services"])


def test_every_handoff_setting_in_compose_exists() -> None:
    fields = {f"HANDOFF_{name.upper()}" for name in Settings.model_fields}
    for name in ("worker", "api"):
        env = compose()["services"][name]["environment"]
        handoff_settings = {key for key in env if key.startswith("HANDOFF_")}
        assert handoff_settings <= fields, handoff_settings - fields
        assert set(env) - handoff_settings <= {"OTEL_EXPORTER_OTLP_ENDPOINT"}
        assert env["HANDOFF_DATABASE_URL"].startswith("postgresql+psycopg://")


def test_compose_registers_exactly_our_search_attributes() -> None:
    script = " ".join(compose()["services"]["temporal-setup"]["command"])
    registered = set(re.search(r"for name in ([\w ]+);", script).group(1).split())  # type: ignore[union-attr]
    assert registered == {key.name for key in search_attributes.ALL}


def test_compose_commands_are_real_commands() -> None:
    services = compose()["services"]
    assert services["worker"]["command"] == ["python", "worker.py"]
    assert (ROOT / "worker.py").exists()
    migrate = services["handoff-migrate"]["command"]
    assert migrate[0] == "handoff"
    assert CliRunner().invoke(app, [*migrate[1:], "--help"]).exit_code == 0
    for name in ("worker", "api"):
        assert services[name]["depends_on"]["handoff-migrate"] == {"condition": "service_completed_successfully"}
    api_command = services["api"]["command"]
    assert api_command[0] == "handoff"
    result = CliRunner().invoke(app, [*api_command[1:], "--help"])
    assert result.exit_code == 0, result.output


def test_the_image_holds_every_shipped_package_and_the_agents_file_exists() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("handoff", "workflows", "activities", "bench"):
        assert f"COPY {package} ./{package}" in dockerfile
    for volume in compose()["services"]["api"]["volumes"]:
        assert (ROOT / volume.split(":")[0]).exists()


def test_prometheus_scrapes_the_api_and_the_worker_where_they_serve_metrics() -> None:
    services = compose()["services"]
    scrape = {
        job["job_name"]: job for job in yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())["scrape_configs"]
    }
    api_port = services["api"]["command"][services["api"]["command"].index("--port") + 1]
    assert scrape["handoff-api"]["static_configs"][0]["targets"] == [f"api:{api_port}"]
    # The API's token reaches Prometheus as the compose secret made from the same variable.
    assert scrape["handoff-api"]["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
    assert compose()["secrets"]["metrics_token"] == {"environment": "HANDOFF_METRICS_TOKEN"}
    assert services["api"]["environment"]["HANDOFF_METRICS_TOKEN"].startswith("${HANDOFF_METRICS_TOKEN:?")
    worker_port = services["worker"]["environment"]["HANDOFF_WORKER_METRICS_ADDRESS"].rsplit(":", 1)[1]
    assert scrape["handoff-worker"]["static_configs"][0]["targets"] == [f"worker:{worker_port}"]


def test_the_dashboard_charts_only_series_that_handoff_exports() -> None:
    """A renamed metric must not leave an empty chart behind: every handoff_ series the
    provisioned dashboard queries is one the API or the worker defines."""
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/handoff.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(handoff_\w+)", target["expr"])
    }
    defined = set(re.findall(r'"(handoff_\w+)"', (ROOT / "handoff/metrics.py").read_text()))
    defined |= set(re.findall(r'"(handoff_\w+)"', (ROOT / "handoff/telemetry.py").read_text()))
    exported = defined | {f"{name}_total" for name in defined} | {f"{name}_bucket" for name in defined}
    assert queried and queried <= exported, queried - exported
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/handoff.yml").read_text())
    mounted = {v.split(":")[1]: v.split(":")[0] for v in compose()["services"]["grafana"]["volumes"]}
    assert mounted[provider["providers"][0]["options"]["path"]] == "./deploy/grafana/dashboards"
