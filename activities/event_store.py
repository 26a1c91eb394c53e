"""Activities: thin adapters from the workflow to the event store, one transaction each.

Idempotent by construction: the workflow chooses the event ids, so a retried append
returns the stored result instead of writing twice.
"""

from __future__ import annotations

import json

import asyncpg
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from eventstore.models import AppendResult, RecordedEvent
from eventstore.store import EventStore, IntegrityError, is_data_error
from workflows.messages import AppendRequest, FollowUpsQuery, ReadRequest

log = structlog.get_logger("eom.activities")

PAGE_BYTES = 1_000_000
"""About how much event data a page of a stream holds (a Temporal payload: 2 MB at most)."""


class EventStoreActivities:
    """Activities bound to one ``EventStore`` (whose pool the composition root owns)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    @activity.defn(name="append_events")
    async def append_events(self, request: AppendRequest) -> AppendResult:
        info = activity.info()
        with structlog.contextvars.bound_contextvars(
            mission_id=request.stream_id,
            workflow_id=info.workflow_id,
            activity="append_events",
            attempt=info.attempt,
        ):
            try:
                result = await self.store.append(
                    stream_id=request.stream_id,
                    expected_version=request.expected_version,
                    events=request.events,
                )
            except IntegrityError as error:
                log.error("append refused", error=str(error))
                # Retrying cannot help: the stream holds something else at that version,
                # or the events' data cannot be stored (UnstorableEvent names where).
                raise ApplicationError(
                    str(error), type=type(error).__name__, non_retryable=True
                ) from error
            except asyncpg.PostgresError as error:
                if not is_data_error(error):
                    raise  # the server or the connection: a retry may succeed
                # PostgreSQL refused the data itself: the same append would be refused
                # again. Its message stays in the log; callers learn only that the data
                # could not be stored.
                log.error(
                    "append refused by the database", error=str(error), sqlstate=error.sqlstate
                )
                raise ApplicationError(
                    "the event store cannot hold this data; nothing was recorded",
                    type="StoreDataError",
                    non_retryable=True,
                ) from None
            log.info(
                "events appended",
                version=result.last_version,
                events=len(request.events),
                replayed=result.replayed,
            )
            return result

    @activity.defn(name="read_stream")
    async def read_stream(self, request: ReadRequest) -> list[RecordedEvent]:
        """The stream after ``after_version``; with ``limit``, a page of it: at most that
        many events, cut once they pass ``PAGE_BYTES`` of data (never fewer than one)."""
        first = request.after_version + 1
        last = first + request.limit - 1 if request.limit is not None else None
        events = await self.store.read_stream(
            request.stream_id, from_version=first, to_version=last
        )
        if request.limit is None:
            return events
        page: list[RecordedEvent] = []
        size = 0
        for event in events:
            size += len(json.dumps(event.data)) + len(event.metadata.model_dump_json())
            if page and size > PAGE_BYTES:
                break
            page.append(event)
        return page

    @activity.defn(name="missions_hosted_by")
    async def missions_hosted_by(self, query: FollowUpsQuery) -> list[str]:
        """The organisation's earlier missions to the same host country, for an earlier
        election, still in follow-up: their reviews reopen."""
        return [
            mission_id
            for mission_id in await self.store.missions_in_follow_up(
                query.host_country,
                organisation=query.organisation,
                before=query.election_day,
            )
            if mission_id != query.exclude_mission_id
        ]
