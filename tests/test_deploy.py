"""docker-compose.yml cannot run here (no Docker engine), so these checks keep it honest
against the code: settings it sets exist, search attributes it registers are ours, the
commands it runs are real, and the image holds every package the project ships."""

from __future__ import annotations

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
        assert set(env) <= fields, set(env) - fields
        assert env["HANDOFF_DATABASE_URL"].startswith("postgresql+psycopg://")


def test_compose_registers_exactly_our_search_attributes() -> None:
    script = " ".join(compose()["services"]["temporal-setup"]["command"])
    registered = set(re.search(r"for name in ([\w ]+);", script).group(1).split())  # type: ignore[union-attr]
    assert registered == {key.name for key in search_attributes.ALL}


def test_compose_commands_are_real_commands() -> None:
    services = compose()["services"]
    assert services["worker"]["command"] == ["python", "worker.py"]
    assert (ROOT / "worker.py").exists()
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
