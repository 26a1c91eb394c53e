"""A small client of eom's HTTP API (used by ``eom demo --via api`` and the tests)."""

from __future__ import annotations

from typing import Any

import httpx

from domain.commands import Command, RegisterInvitation
from workflows.client import CommandRefused
from workflows.messages import CommandResult


def command_path(mission_id: str, command: Command) -> str:
    if isinstance(command, RegisterInvitation):
        return "/v1/missions"
    return f"/v1/missions/{mission_id}/{command.type.replace('_', '-')}"


class ApiClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def execute(
        self,
        mission_id: str,
        command: Command,
        *,
        token: str,
        idempotency_key: str | None = None,
    ) -> CommandResult:
        headers = {"Authorization": f"Bearer {token}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        response = await self.http.post(
            command_path(mission_id, command),
            json=command.model_dump(mode="json"),
            headers=headers,
        )
        if response.is_success:
            return CommandResult.model_validate(response.json())
        error: dict[str, Any] = response.json().get("error", {})
        raise CommandRefused(
            str(error.get("code", response.status_code)),
            f"HTTP {response.status_code}: {error.get('message', response.text)}",
        )
