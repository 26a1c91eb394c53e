"""A request body limit that answers in the API's error shape (Starlette's own answers
in plain text). Checks the declared Content-Length first, then counts what arrives, so a
chunked upload cannot slip past it."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError, Code
from forms.openrosa import response as openrosa_response

OPENROSA_PREFIX = "/openrosa/"


class BodyTooLarge(HTTPException):
    """Raised inside the app when the counted body passes the limit. An ``HTTPException``
    so that whoever reads the body (FastAPI's request parsing turns any other error into
    a 400) lets it through to the API's error handler: 413, in the API's error shape."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body exceeds {max_bytes} bytes")


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if started:
                        # A response under way (a live stream, whose route reads no
                        # body) cannot become a 413: it ends, as if the client had left.
                        return {"type": "http.disconnect"}
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body exceeds {self.max_bytes} bytes"
        if str(scope.get("path", "")).startswith(OPENROSA_PREFIX):
            # OpenRosa clients read refusals from an OpenRosa response document.
            response: Response = Response(
                openrosa_response(message, nature="error"),
                status_code=413,
                media_type="text/xml; charset=utf-8",
                headers={"X-OpenRosa-Version": "1.0"},
            )
        else:
            response = ApiError(Code.body_too_large, message).response()
        await response(scope, receive, send)
