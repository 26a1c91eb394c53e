"""A local SMTP server that keeps what it receives: reminders without a mail server.

The embedded stack points ``EOM_SMTP_HOST``/``EOM_SMTP_PORT`` at it, so that reminders
sent during a demo (or a test) can be read as ``.eml`` files instead of leaving the
machine. It never relays anything.
"""

from __future__ import annotations

import threading
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from cli.stack import free_port

log = structlog.get_logger("eom.smtp_sink")

HOST = "127.0.0.1"


class _StoreHandler:
    """aiosmtpd's handler: each message as one ``.eml`` file, written whole or not at
    all (a reader never sees half a message)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        with self._lock:
            self.count += 1
            number = self.count
        # Names sort in arrival order: nanoseconds, then this sink's own count.
        name = f"{time.time_ns():020d}-{number:06d}.eml"
        partial = self.directory / f".{name}.tmp"
        partial.write_bytes(raw)
        partial.replace(self.directory / name)
        log.info("message stored", file=name, recipients=envelope.rcpt_tos)
        return "250 Message accepted"


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 (in a thread of its own) that stores every message
    it receives in ``directory``. ``port`` 0 or ``None`` takes a free port."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self._requested_port = port
        self._handler = _StoreHandler(directory)
        self._controller: Controller | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the SMTP sink is not started")
        return self._port

    @property
    def count(self) -> int:
        """Messages received since ``start``."""
        return self._handler.count

    def start(self) -> None:
        if self._controller is not None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        port = self._requested_port or free_port()
        controller = Controller(self._handler, hostname=HOST, port=port)
        controller.start()
        self._controller, self._port = controller, port
        log.info("smtp sink listening", host=HOST, port=port, directory=str(self.directory))

    def stop(self) -> None:
        if self._controller is None:
            return
        self._controller.stop()
        self._controller = None

    def files(self) -> list[Path]:
        """The stored messages, oldest first (including those of earlier runs)."""
        return sorted(self.directory.glob("*.eml"))

    def messages(self) -> list[EmailMessage]:
        parser = BytesParser(policy=policy.default)
        messages = []
        for path in self.files():
            with path.open("rb") as file:
                message = parser.parse(file)
            assert isinstance(message, EmailMessage)
            messages.append(message)
        return messages

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where: Any = self._port if self._port is not None else "not started"
        return f"SmtpSink({str(self.directory)!r}, port={where})"
