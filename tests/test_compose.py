"""docker-compose.yml stays consistent with the settings and the CLI (no Docker engine
runs here, so the file is checked, not started)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from cli.main import app
from worker import Settings

ROOT = Path(__file__).parent.parent


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def settings_names() -> set[str]:
    return {
        str(field.validation_alias)
        for field in Settings.model_fields.values()
        if field.validation_alias
    }


def test_the_stack_has_its_four_services() -> None:
    """PostgreSQL, Temporal on PostgreSQL, the Web UI and the eom worker."""
    services = compose()["services"]
    assert set(services) == {"postgresql", "temporal", "temporal-ui", "eom-worker"}
    assert services["temporal"]["environment"]["DB"].startswith("postgres")
    assert services["temporal"]["environment"]["POSTGRES_SEEDS"] == "postgresql"


def test_worker_environment_uses_the_settings_names() -> None:
    """Every variable the worker gets is a setting, and the required ones are there."""
    environment = compose()["services"]["eom-worker"]["environment"]
    assert set(environment) <= settings_names()
    assert {"DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "EOM_TASK_QUEUE"} <= set(
        environment
    )
    parsed = Settings.model_validate(environment)
    assert parsed.database_url and parsed.temporal_address


def test_worker_addresses_point_at_services_of_the_stack() -> None:
    """The database and Temporal hosts are service names of the same file."""
    services = compose()["services"]
    environment = services["eom-worker"]["environment"]
    assert urlsplit(environment["DATABASE_URL"]).hostname in services
    assert environment["TEMPORAL_ADDRESS"].split(":")[0] in services
    assert (
        services["temporal-ui"]["environment"]["TEMPORAL_ADDRESS"]
        == environment["TEMPORAL_ADDRESS"]
    )


def test_worker_command_is_a_real_cli_command() -> None:
    """The container runs `eom worker`, which the CLI defines."""
    command = compose()["services"]["eom-worker"]["command"]
    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    assert command[0] == "eom" and command[1] in names
    assert (ROOT / "Dockerfile").exists()
