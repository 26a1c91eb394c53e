"""Activities: thin adapters from the workflow to the event store, one transaction each.

Idempotent by construction: the workflow chooses the event ids, so a retried append
returns the stored result instead of writing twice.
"""

from __future__ import annotations

import asyncpg
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain import fold, load_event_json
from eventstore.models import AppendResult, RecordedEvent
from eventstore.store import EventStore, IntegrityError, is_data_error, read_stream_data_on
from workflows.messages import AppendRequest, FoldedStream, FollowUpsQuery, ReadRequest

log = structlog.get_logger("eom.activities")


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
        return await self.store.read_stream(
            request.stream_id, from_version=request.after_version + 1
        )

    @activity.defn(name="fold_stream")
    async def fold_stream(self, request: ReadRequest) -> FoldedStream:
        """The stream folded, as the mission's workflow holds its state
        (``Mission.for_decisions``), with the hash of the last event folded: one small
        result however long the stream, read in one snapshot."""
        async with self.store.connection() as conn, conn.transaction(isolation="repeatable_read"):
            data = await read_stream_data_on(conn, request.stream_id)
            head = await conn.fetchval(
                "SELECT head_hash FROM streams WHERE stream_id = $1", request.stream_id
            )
        state = fold(load_event_json(d) for d in data)
        return FoldedStream(
            state=state.for_decisions(visits=request.visits), head_hash=head if data else None
        )

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
