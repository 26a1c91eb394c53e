"""Real receivers for messages to member states: an HTTP endpoint that checks webhook
signatures and answers as scripted, served by uvicorn on loopback."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from activities.delivery import verify_signature
from cli.stack import free_port

SECRET = "s3cret-for-tests-0123456789"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class Hook:
    """One webhook: the statuses it answers, in order (then 200), or it hangs."""

    secret: str = SECRET
    script: list[int] = field(default_factory=list)
    hang: bool = False
    requests: list[Received] = field(default_factory=list)
    accepted: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


class Receiver:
    """A member state's HTTP endpoint: checks each request's signature, answers as its
    hook's script says, and keeps what it accepted."""

    def __init__(self) -> None:
        self.hooks: dict[str, Hook] = {}
        self.release = asyncio.Event()
        self.base_url = ""
        self.app = Starlette(routes=[Route("/hooks/{name}", self.endpoint, methods=["POST"])])

    def hook(self, **behaviour: object) -> tuple[str, Hook]:
        name = uuid.uuid4().hex
        self.hooks[name] = hook = Hook(**behaviour)  # type: ignore[arg-type]
        return f"{self.base_url}/hooks/{name}", hook

    async def endpoint(self, request: Request) -> Response:
        hook = self.hooks[request.path_params["name"]]
        body = await request.body()
        received = Received(
            headers=dict(request.headers),
            body=body,
            verified=verify_signature(
                hook.secret,
                request.headers.get("x-eom-timestamp", ""),
                body,
                request.headers.get("x-eom-signature", ""),
            ),
        )
        hook.requests.append(received)
        hook.arrived.set()
        if hook.hang:
            await self.release.wait()
        status = hook.script.pop(0) if hook.script else 200
        if 200 <= status < 300 and received.verified:
            hook.accepted.append(received)
        return Response(f"status {status}", status_code=status)


@asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    server = uvicorn.Server(
        uvicorn.Config(
            receiver.app,
            host="127.0.0.1",
            port=free_port(),
            log_config=None,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "the receiver did not start"
        await asyncio.sleep(0.02)
    receiver.base_url = f"http://127.0.0.1:{server.config.port}"
    yield receiver
    receiver.release.set()
    server.should_exit = True
    await serving
