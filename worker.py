"""The composition root: settings, logging, the data converter, the database pool, the
Temporal client and the worker are made and wired here, and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import logging
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import asyncpg
import structlog
import temporalio.activity
import temporalio.workflow
import uvicorn
from limits import parse as parse_rate
from pydantic import Field, SecretStr, TypeAdapter, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.delivery import DeliveryActivities, DeliverySettings
from activities.event_store import EventStoreActivities
from activities.intake import IntakeActivities
from activities.policies import PolicyActivities
from api.app import create_app
from api.feed import EventFeed
from api.idempotency import IdempotencyStore
from api.tokens import TokenStore
from console.app import ConsoleServices, ConsoleSettings, mount_console
from console.web import RedactSecrets
from domain.values import RECORDED
from eventstore.migrations import migrate
from eventstore.projections import MISSIONS, Projector
from eventstore.store import EventStore, create_pool
from intake.coverage import COVERAGE
from intake.writer import Intake
from workflows.client import Missions
from workflows.followup import FollowUpWorkflow
from workflows.mission import MissionWorkflow
from workflows.reminders import ReminderLadderWorkflow


class _RecordedJSONConverter(PydanticJSONPlainPayloadConverter):
    """Pydantic's JSON payloads, read under the ``RECORDED`` context: a payload between
    eom's own processes (a command, a mission's state carried over continue-as-new, an
    activity's events) was validated where it was made, and a state folded from an old
    history must not be refused by an input rule added since (``domain.values``)."""

    def __init__(self) -> None:
        super().__init__()
        self._adapters = functools.lru_cache(maxsize=1024)(TypeAdapter)

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        hint: Any = type_hint if type_hint is not None else Any
        try:
            adapter: TypeAdapter[Any] = self._adapters(hint)
        except TypeError:  # an unhashable hint
            adapter = TypeAdapter(hint)
        return adapter.validate_json(payload.data, context=RECORDED)


class _PayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        json_converter = _RecordedJSONConverter()
        super().__init__(
            *(
                json_converter if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


data_converter = DataConverter(payload_converter_class=_PayloadConverter)
"""Pydantic models in, pydantic models out, for every workflow, update and activity."""

SEARCH_ATTRIBUTES = {
    "MissionStage": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "HostCountry": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
}


class Settings(BaseSettings):
    """Read from the environment; the same names are used in docker-compose.yml."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    temporal_address: str | None = Field(default=None, validation_alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", validation_alias="TEMPORAL_NAMESPACE")
    task_queue: str = Field(default="eom-missions", validation_alias="EOM_TASK_QUEUE")
    log_level: str = Field(default="INFO", validation_alias="EOM_LOG_LEVEL")
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", validation_alias="EOM_LOG_FORMAT"
    )
    database_pool_size: int = Field(default=10, ge=1, validation_alias="EOM_DATABASE_POOL_SIZE")
    api_host: str = Field(default="127.0.0.1", validation_alias="EOM_API_HOST")
    api_port: int = Field(default=8000, ge=0, le=65535, validation_alias="EOM_API_PORT")
    api_max_body_bytes: int = Field(
        default=1_048_576, ge=1024, validation_alias="EOM_API_MAX_BODY_BYTES"
    )
    api_submission_rate: str = Field(
        default="120/minute", validation_alias="EOM_API_SUBMISSION_RATE"
    )
    """Per token, on every POST: ``<count>/<second|minute|hour>`` (the limits library)."""
    api_report_rate: str = Field(default="1200/minute", validation_alias="EOM_API_REPORT_RATE")
    """Per token, on report requests (a device syncing its backlog): same form."""
    api_token_cache_seconds: float = Field(
        default=5.0, ge=0, le=300, validation_alias="EOM_API_TOKEN_CACHE_SECONDS"
    )
    """How long the API keeps a token's lookup: a revocation made elsewhere (``eom token
    revoke``) takes effect within this time; 0 looks every token up on every request."""
    api_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="EOM_API_CORS_ORIGINS"
    )
    """Comma-separated origins allowed by CORS; empty (the default) turns CORS off."""
    api_streams_per_token: int = Field(
        default=4, ge=1, le=1000, validation_alias="EOM_API_STREAMS_PER_TOKEN"
    )
    """Live event streams one token may hold open at once (per API process); 429 beyond."""
    api_stream_check_seconds: float = Field(
        default=5.0, gt=0, le=300, validation_alias="EOM_API_STREAM_CHECK_SECONDS"
    )
    """How often a live stream checks its token: it ends once the token has expired or
    been revoked."""
    api_busy_seconds: float = Field(
        default=30.0, gt=0, le=600, validation_alias="EOM_API_BUSY_SECONDS"
    )
    """How long a command waits for a busy mission before ``503 mission_busy``."""
    console_url: str | None = Field(default=None, validation_alias="EOM_CONSOLE_URL")
    """The web console's address as people reach it (``https://eom.example.org``): the
    base of the sign-in links eom sends. Unset, it is the API's own address
    (``console_base_url``)."""

    console_secret_key: SecretStr | None = Field(
        default=None, validation_alias="EOM_CONSOLE_SECRET_KEY"
    )
    """Signs the console's session cookies (32+ characters). Unset, each API process
    draws its own, and sessions end when it restarts; ``eom up`` keeps one in its data
    directory."""
    console_session_hours: float = Field(
        default=8.0, gt=0, le=720, validation_alias="EOM_CONSOLE_SESSION_HOURS"
    )
    """How long a console session lasts after sign-in."""

    @field_validator("console_secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("EOM_CONSOLE_SECRET_KEY needs at least 32 characters")
        return value

    @field_validator("console_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError(f"{value!r} must not have a query or fragment")
        return value.strip().rstrip("/")

    @property
    def console_base_url(self) -> str:
        """``console_url``, or else ``http://<api_host>:<api_port>`` (a wildcard host,
        ``0.0.0.0`` or ``::``, read as this machine: 127.0.0.1)."""
        if self.console_url:
            return self.console_url
        host = self.api_host if self.api_host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.api_port}"

    @field_validator("api_cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("api_submission_rate", "api_report_rate")
    @classmethod
    def _valid_rate(cls, value: str) -> str:
        try:
            parse_rate(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate like 120/minute") from None
        return value


def configure_logging(settings: Settings) -> None:
    """structlog once, at the entry point: JSON off a terminal, readable on one. Standard
    library loggers (asyncpg, temporalio's workflow and activity loggers) go through the
    same renderer, with context bound in ``structlog.contextvars``."""
    json_output = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if json_output else _identity,
            renderer,
        ],
    )
    # Workflow and activity context goes in structured fields, not into the message.
    temporalio.workflow.logger.workflow_info_on_message = False
    temporalio.activity.logger.activity_info_on_message = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # pgserver narrates every pg_ctl call at INFO.
    logging.getLogger("pgserver").setLevel(max(logging.WARNING, root.level))


def _identity(
    logger: object, name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    return event


_runtime: Runtime | None = None


def temporal_runtime() -> Runtime:
    """One SDK runtime per process, its core's logs forwarded into Python logging (and so
    through structlog) instead of printed on their own."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(
                    filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                    forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
                )
            )
        )
    return _runtime


async def connect_client(settings: Settings) -> Client:
    if not settings.temporal_address:
        raise RuntimeError("TEMPORAL_ADDRESS is not set")
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter,
        runtime=temporal_runtime(),
    )


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register MissionStage and HostCountry on a server that lacks them (idempotent)."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {
        name: kind
        for name, kind in SEARCH_ATTRIBUTES.items()
        if name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(search_attributes=missing, namespace=namespace)
        )


WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=dataclasses.replace(
        SandboxRestrictions.default,
        # Election-day rules read instants in the host's zone: ``zoneinfo.ZoneInfo(name)``
        # reads the tz database installed with eom (the ``tzdata`` package), the same
        # data on every worker of one release. The sandbox otherwise hands workflows a
        # proxy of the class that ``datetime`` does not take as a tzinfo.
        invalid_module_members=SandboxRestrictions.invalid_module_members_default.with_child_unrestricted(
            "zoneinfo", "ZoneInfo"
        ),
    )
)
"""How eom's workflows run: Temporal's sandbox, with ``zoneinfo.ZoneInfo`` usable."""


def build_worker(
    client: Client,
    store: EventStore,
    task_queue: str,
    *,
    delivery: DeliverySettings | None = None,
    events: EventStoreActivities | None = None,
) -> Worker:
    """The worker of every eom workflow and activity (``events`` replaces the event-store
    activities, e.g. with ones that fail on purpose)."""
    events = events or EventStoreActivities(store)
    policies = PolicyActivities(store.pool)
    deliveries = DeliveryActivities(store.pool, delivery or DeliverySettings())
    intake = IntakeActivities(store)
    return Worker(
        client,
        task_queue=task_queue,
        workflow_runner=WORKFLOW_RUNNER,
        workflows=[MissionWorkflow, ReminderLadderWorkflow, FollowUpWorkflow],
        activities=[
            events.append_events,
            events.read_stream,
            events.fold_stream,
            events.missions_hosted_by,
            policies.ladder_policy,
            deliveries.deliver,
            intake.intake_progress,
            intake.drain_intake,
            intake.missing_check_ins,
            intake.intake_command,
        ],
    )


@dataclass
class Service:
    settings: Settings
    pool: asyncpg.Pool
    store: EventStore
    client: Client


@asynccontextmanager
async def open_service(settings: Settings) -> AsyncIterator[Service]:
    """The database pool (migrated) and the Temporal client, closed on exit."""
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set")
    pool = await create_pool(settings.database_url, max_size=settings.database_pool_size)
    try:
        async with pool.acquire() as conn:
            applied = await migrate(conn)
        if applied:
            structlog.get_logger("eom").info("migrations applied", versions=applied)
        client = await connect_client(settings)
        yield Service(settings=settings, pool=pool, store=EventStore(pool), client=client)
    finally:
        await pool.close()


async def run_worker(
    settings: Settings, *, stop: asyncio.Event, delivery: DeliverySettings | None = None
) -> None:
    log = structlog.get_logger("eom.worker")
    async with open_service(settings) as service:
        await ensure_search_attributes(service.client, settings.temporal_namespace)
        worker = build_worker(service.client, service.store, settings.task_queue, delivery=delivery)
        async with worker:
            log.info(
                "worker running",
                task_queue=settings.task_queue,
                temporal=settings.temporal_address,
                namespace=settings.temporal_namespace,
            )
            await follow_the_log(
                [Projector(service.store, MISSIONS), Projector(service.store, COVERAGE)],
                stop=stop,
            )
        log.info("worker stopped")


async def run_api(
    settings: Settings,
    *,
    stop: asyncio.Event,
    on_start: Callable[[str], None] | None = None,
    delivery: DeliverySettings | None = None,
) -> None:
    """Serve the HTTP API and the console with uvicorn until ``stop`` is set; the
    console's sign-in links go by ``delivery``'s mail relay (else the environment's)."""
    log = structlog.get_logger("eom.api")
    assert settings.database_url
    async with open_service(settings) as service:
        feed = EventFeed(service.store, settings.database_url)
        await feed.start()
        intake = Intake(service.store)
        app = create_app(
            missions=Missions(
                client=service.client,
                store=service.store,
                task_queue=settings.task_queue,
                busy_seconds=settings.api_busy_seconds,
            ),
            tokens=TokenStore(service.pool, cache_seconds=settings.api_token_cache_seconds),
            idempotency=IdempotencyStore(service.pool),
            feed=feed,
            intake=intake,
            max_body_bytes=settings.api_max_body_bytes,
            submission_rate=settings.api_submission_rate,
            report_rate=settings.api_report_rate,
            cors_origins=settings.api_cors_origins,
            streams_per_token=settings.api_streams_per_token,
            stream_check_seconds=settings.api_stream_check_seconds,
        )
        secret_key = settings.console_secret_key
        if secret_key is None:
            log.warning(
                "EOM_CONSOLE_SECRET_KEY is not set: console sessions end when the API restarts"
            )
        mount_console(
            app,
            ConsoleServices(feed=feed, mail=delivery or DeliverySettings()),
            ConsoleSettings(
                secret_key=(
                    secret_key.get_secret_value() if secret_key else secrets.token_urlsafe(48)
                ),
                base_url=settings.console_base_url,
                session_seconds=int(settings.console_session_hours * 3600),
                stream_check_seconds=settings.api_stream_check_seconds,
            ),
        )
        logging.getLogger("uvicorn.access").addFilter(RedactSecrets())
        config = uvicorn.Config(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        try:
            # uvicorn reports readiness only as a flag on the server.
            while not server.started and not serving.done():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            if serving.done():
                await serving  # raises what made it fail
                raise RuntimeError(f"the API could not listen on {config.host}:{config.port}")
            url = f"http://{config.host}:{config.port}"
            # What start-up built lives as long as the process: kept out of the cyclic
            # GC's full collections, which would otherwise walk it (imports, app, pool)
            # in the middle of requests.
            gc.collect()
            gc.freeze()
            log.info("api listening", url=url, docs=f"{url}/v1/docs")
            if on_start is not None:
                on_start(url)
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
        finally:
            server.should_exit = True
            await serving
            await intake.close()
            await feed.stop()


async def follow_the_log(
    projectors: list[Projector], *, stop: asyncio.Event, every: float = 1.0
) -> None:
    """Keep the read models current until ``stop``; a failed batch is retried next time
    (its transaction rolled back, the checkpoint did not move)."""
    log = structlog.get_logger("eom.projections")
    while not stop.is_set():
        for projector in projectors:
            try:
                projected = await projector.run_once()
                if projected:
                    log.debug("projected", projection=projector.projection.name, events=projected)
            except (OSError, asyncpg.PostgresError) as error:
                log.warning(
                    "projection batch failed; retrying",
                    projection=projector.projection.name,
                    error=str(error),
                )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGINT and SIGTERM end the worker gracefully: running tasks finish first."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def _main() -> None:
    settings = Settings()
    configure_logging(settings)
    stop = asyncio.Event()
    install_stop_signals(stop)
    await run_worker(settings, stop=stop)


def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
