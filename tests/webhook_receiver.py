"""A real HTTP receiver for webhook tests: a threaded server on a free loopback port
that records every request and answers as the test's ``respond`` function says."""
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def verified(self, secret: str) -> dict:
        """The payload, if the signature by ``secret`` is valid (raises otherwise)."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class Answer:
    status: int = 200
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    # Send this many bytes of body (chunked), for the read-cap test.
    stream_bytes: int = 0


class Receiver:
    def __init__(self, respond=None):
        self.respond = respond or (lambda received: Answer())
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.bytes_written = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender died mid-request (a kill -9 test): no delivery arrived,
                    # only a broken request, which any HTTP server discards.
                    self.close_connection = True
                    return
                received = Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                    body)
                with receiver.lock:
                    receiver.received.append(received)
                answer = receiver.respond(received)
                time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    if answer.stream_bytes:
                        self.send_header("Content-Length", str(answer.stream_bytes))
                        self.end_headers()
                        chunk = b"x" * 65536
                        while receiver.bytes_written < answer.stream_bytes:
                            self.wfile.write(chunk)
                            receiver.bytes_written += len(chunk)
                    else:
                        self.send_header("Content-Length", str(len(answer.body)))
                        self.end_headers()
                        self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def ids(self) -> list[str]:
        with self.lock:
            return [r.id for r in self.received]

    def types(self) -> list[str]:
        import json

        with self.lock:
            return [json.loads(r.body)["type"] for r in self.received]

    def wait_for(self, condition, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(self):
                return
            time.sleep(0.05)
        raise AssertionError(f"receiver: condition not met in {timeout}s; got {self.types()}")
