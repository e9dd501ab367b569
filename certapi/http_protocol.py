"""The HTTP/1.1 connection handler `certapi serve` runs: uvicorn's httptools protocol with
a bound on the request head and deadlines for slow clients.

Uvicorn reads a request head of any size (a 32 MB header was buffered whole) and waits
for a client forever, before the first byte, between header lines and between body
chunks; a few hundred trickling connections hold a worker's memory and sockets. Here:

* a request line plus headers over ``max_header_bytes`` is answered 431 and the
  connection closed: counted as the bytes arrive while the head is incomplete (at most
  one socket read past the bound is ever buffered), and as the parser hands over the
  line and each header (a head that arrives whole in one read);
* a request head not complete within ``header_timeout_seconds`` of the connection
  opening (or of the request's first byte on a kept-alive connection), or a body not
  complete within ``body_timeout_seconds`` of its head, is answered 408 (when no
  response has started yet) and the connection closed.

Between requests uvicorn's own keep-alive timeout applies. httptools is kept (rather
than h11, which bounds the head itself) for its speed: its callbacks tell where a
request is, which is all the bounds need.
"""
import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from certapi.config import Settings
from certapi.errors import envelope_bytes


class _HeadTooLarge(Exception):
    """Raised from a parser callback: httptools stops parsing and uvicorn calls
    ``send_400_response``, which answers 431 instead."""


# Where the connection is in the current request.
_HEAD, _BODY, _DONE = "head", "body", "done"


def _raw_response(status: int, reason: str, code: str, message: str) -> bytes:
    body = envelope_bytes(code, message)
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("ascii") + body


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    _settings: Settings | None = None

    @classmethod
    def settings(cls) -> Settings:
        # Read once per process: every connection of a worker shares the same bounds.
        if cls._settings is None:
            cls._settings = Settings()
        return cls._settings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = self.settings()
        self.max_header_bytes = limits.max_header_bytes
        self.header_timeout = limits.header_timeout_seconds
        self.body_timeout = limits.body_timeout_seconds
        self._phase = _HEAD
        self._head_bytes = self._parsed_head_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._phase == _HEAD and not self.transport.is_closing():
            # The whole read went into a head that is still incomplete (a read that
            # completes one moves the phase on), so every byte of it counts.
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse_head()

    def _refuse_head(self) -> None:
        self._refuse(431, "Request Header Fields Too Large", "request_header_fields_too_large",
                     f"The request line and headers exceed {self.max_header_bytes} bytes")

    def send_400_response(self, msg: str) -> None:
        if self._parsed_head_bytes > self.max_header_bytes:
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def _count(self, size: int) -> None:
        self._parsed_head_bytes += size
        if self._parsed_head_bytes > self.max_header_bytes:
            raise _HeadTooLarge

    # Parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase, self._head_bytes, self._parsed_head_bytes = _HEAD, 0, 0
        if self._deadline is None:  # a kept-alive connection's next request
            self._arm(self.header_timeout)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        self._arm(self.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = _DONE
        self._disarm()
        super().on_message_complete()

    def _too_slow(self) -> None:
        self._deadline = None
        what = "request headers" if self._phase == _HEAD else "request body"
        seconds = self.header_timeout if self._phase == _HEAD else self.body_timeout
        self._refuse(408, "Request Timeout", "request_timeout",
                     f"The {what} did not arrive within {seconds:g} seconds")

    def _refuse(self, status: int, reason: str, code: str, message: str) -> None:
        """Answer ``status`` unless a response has started, then close the connection; a
        handler still waiting for the body sees the client disconnect."""
        self._disarm()
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self._phase == _HEAD:
            answer = cycle is None or cycle.response_complete  # not a pipelined request's turn
        else:
            answer = cycle is not None and not cycle.response_started
        if answer:
            self.transport.write(_raw_response(status, reason, code, message))
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()
