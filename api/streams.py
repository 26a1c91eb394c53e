"""How many live event streams a token holds at once: each is a held connection and a
database reader, so one token (a leaked one, or a client reconnecting in a loop) must not
hold them without bound. Per API process, like the rate limits."""

from __future__ import annotations

import uuid
import weakref
from types import TracebackType


class TooManyStreams(Exception):
    """The token holds as many streams as it may."""


class Lease:
    """One stream's place, given back when the stream ends (``with lease:``), or when the
    lease is dropped unused (a client that left before its stream began)."""

    def __init__(self, leases: StreamLeases, token_id: uuid.UUID) -> None:
        self._give_back = weakref.finalize(self, leases.give_back, token_id)

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._give_back()  # once: a finalizer runs at most once


class StreamLeases:
    def __init__(self, *, per_token: int) -> None:
        if per_token < 1:
            raise ValueError("a token may hold at least one stream")
        self.per_token = per_token
        self._held: dict[uuid.UUID, int] = {}

    def take(self, token_id: uuid.UUID) -> Lease:
        """A place for one more stream, or ``TooManyStreams``."""
        held = self._held.get(token_id, 0)
        if held >= self.per_token:
            raise TooManyStreams(
                f"this token holds {held} live streams, as many as it may "
                f"(EOM_API_STREAMS_PER_TOKEN={self.per_token}); close one first"
            )
        self._held[token_id] = held + 1
        return Lease(self, token_id)

    def give_back(self, token_id: uuid.UUID) -> None:
        left = self._held.get(token_id, 0) - 1
        if left > 0:
            self._held[token_id] = left
        else:
            self._held.pop(token_id, None)

    def held(self, token_id: uuid.UUID) -> int:
        return self._held.get(token_id, 0)
