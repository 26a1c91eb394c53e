"""docker-compose.yml stays consistent with the settings and the CLI (no Docker engine
runs here, so the file is checked, not started)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from activities.delivery import DeliverySettings
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
        for model in (Settings, DeliverySettings)
        for field in model.model_fields.values()
        if field.validation_alias
    }


EOM_SERVICES = ("eom-worker", "eom-api")


def test_the_stack_has_its_services() -> None:
    """PostgreSQL, Temporal on PostgreSQL, the Web UI, the eom worker and the API."""
    services = compose()["services"]
    assert set(services) == {"postgresql", "temporal", "temporal-ui", "mail", *EOM_SERVICES}
    assert services["temporal"]["environment"]["DB"].startswith("postgres")
    assert services["temporal"]["environment"]["POSTGRES_SEEDS"] == "postgresql"


def test_eom_environment_uses_the_settings_names() -> None:
    """Every variable the worker and the API get is a setting, valid as one, and the
    required ones are there."""
    for service in EOM_SERVICES:
        environment = compose()["services"][service]["environment"]
        assert set(environment) <= settings_names()
        required = {"DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "EOM_TASK_QUEUE"}
        assert required <= set(environment)
        parsed = Settings.model_validate(environment)
        assert parsed.database_url and parsed.temporal_address
        DeliverySettings.model_validate(environment)


def test_eom_addresses_point_at_services_of_the_stack() -> None:
    """The database and Temporal hosts are service names of the same file, and the API
    listens on the port it publishes."""
    services = compose()["services"]
    for service in EOM_SERVICES:
        environment = services[service]["environment"]
        assert urlsplit(environment["DATABASE_URL"]).hostname in services
        assert environment["TEMPORAL_ADDRESS"].split(":")[0] in services
    api = services["eom-api"]
    assert api["ports"] == [f"{api['environment']['EOM_API_PORT']}:8000"]
    environment = services["eom-worker"]["environment"]
    assert environment["EOM_SMTP_HOST"] in services
    assert (
        services["temporal-ui"]["environment"]["TEMPORAL_ADDRESS"]
        == environment["TEMPORAL_ADDRESS"]
    )


def test_eom_commands_are_real_cli_commands() -> None:
    """The containers run `eom worker` and `eom api`, which the CLI defines."""
    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    for service in EOM_SERVICES:
        command = compose()["services"][service]["command"]
        assert command[0] == "eom" and command[1] in names
    assert (ROOT / "Dockerfile").exists()
