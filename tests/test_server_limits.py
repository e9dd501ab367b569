"""What a hostile client can make `certapi serve` hold: a request head is bounded in size
(431) and in time (408), a body in time (408), under plain uvicorn (`serve`) and under
gunicorn (`serve --workers N`) alike. Against a real server: these bounds live in the
connection handler, below anything an in-process test client reaches."""
import json
import socket
import time

import pytest

from tests.databases import backend, fresh_database
from tests.live_server import LiveServer, new_account, read_until_closed

MAX_HEADER_BYTES = 64 * 1024
HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 2.0
KEEPALIVE = 4


@pytest.fixture(scope="module", params=[1, 2], ids=["serve", "serve-workers-2"])
def server(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"limits{request.param}")
    with pytest.MonkeyPatch.context() as env, fresh_database(backend(), tmp, "limits") as url:
        env.setenv("CERTAPI_MAX_HEADER_BYTES", str(MAX_HEADER_BYTES))
        env.setenv("CERTAPI_HEADER_TIMEOUT_SECONDS", str(HEADER_TIMEOUT))
        env.setenv("CERTAPI_BODY_TIMEOUT_SECONDS", str(BODY_TIMEOUT))
        env.setenv("CERTAPI_KEEPALIVE_SECONDS", str(KEEPALIVE))
        live = LiveServer(url, tmp / "server.log", workers=request.param).start()
        try:
            yield live
        finally:
            live.kill()
        assert "Traceback" not in live.log()


def _connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=20)


def _read_reply(conn: socket.socket) -> bytes:
    reply = read_until_closed(conn)
    conn.close()
    return reply


def _send_all(conn: socket.socket, data: bytes) -> None:
    """Send what the server will take; it may close the connection part-way."""
    try:
        conn.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def _error(reply: bytes, status: int, code: str) -> str:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), reply[:300]
    assert b"content-type: application/json" in head.lower()
    error = json.loads(body)["error"]
    assert error["code"] == code
    return error["message"]


def _get(headers: str = "") -> bytes:
    return f"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n".encode()


def test_one_header_over_the_bound_is_refused_with_431(server):
    conn = _connect(server)
    _send_all(conn, _get(f"X-Big: {'a' * (1 << 20)}\r\n"))
    message = _error(_read_reply(conn), 431, "request_header_fields_too_large")
    assert str(MAX_HEADER_BYTES) in message


def test_many_small_headers_over_the_bound_are_refused_with_431(server):
    many = "".join(f"X-H{i}: v\r\n" for i in range(10_000))
    conn = _connect(server)
    _send_all(conn, _get(many))
    _error(_read_reply(conn), 431, "request_header_fields_too_large")


def test_a_head_just_under_the_bound_is_served(server):
    conn = _connect(server)
    conn.sendall(_get(f"X-Big: {'a' * (MAX_HEADER_BYTES - 1024)}\r\n"))
    assert _read_reply(conn).startswith(b"HTTP/1.1 200 ")


def test_the_bound_is_counted_per_request_on_a_kept_alive_connection(server):
    half = f"X-Big: {'a' * (MAX_HEADER_BYTES // 2)}\r\n"
    one = f"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n{half}\r\n".encode()
    conn = _connect(server)
    for _ in range(3):
        conn.sendall(one)
        reply = b""
        while not reply.endswith(b"}\n"):
            reply += conn.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    conn.close()


def _health_on(conn: socket.socket) -> bytes:
    conn.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    reply = b""
    while not reply.endswith(b"}\n"):
        chunk = conn.recv(65536)
        assert chunk, f"closed after {reply[:200]!r}"
        reply += chunk
    return reply


def test_an_idle_kept_alive_connection_lasts_the_keepalive_setting(server):
    """gunicorn closed idle connections after its own 2 s default (uvicorn: 5 s): a client
    or proxy reusing one just then had its request reset. Now both last
    CERTAPI_KEEPALIVE_SECONDS, then close."""
    conn = _connect(server)
    assert _health_on(conn).startswith(b"HTTP/1.1 200 ")
    time.sleep(KEEPALIVE - 1.5)  # longer than gunicorn's default
    assert _health_on(conn).startswith(b"HTTP/1.1 200 ")
    idle_since = time.monotonic()
    assert read_until_closed(conn) == b""
    assert KEEPALIVE - 1 < time.monotonic() - idle_since < KEEPALIVE + 5
    conn.close()


def test_a_client_that_sends_nothing_is_closed_after_the_header_timeout(server):
    conn = _connect(server)
    started = time.monotonic()
    _error(_read_reply(conn), 408, "request_timeout")
    assert time.monotonic() - started < HEADER_TIMEOUT + 5


def test_headers_trickled_slower_than_the_header_timeout_get_408(server):
    conn = _connect(server)
    started = time.monotonic()
    _send_all(conn, b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    # One header line every 0.2 s keeps the connection busy but never finishes the head.
    for i in range(int((HEADER_TIMEOUT + 5) / 0.2)):
        time.sleep(0.2)
        try:
            conn.sendall(f"X-Slow-{i}: x\r\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            break
        if time.monotonic() - started > HEADER_TIMEOUT + 1:
            break
    _error(_read_reply(conn), 408, "request_timeout")
    assert time.monotonic() - started < HEADER_TIMEOUT + 5


def test_a_body_trickled_slower_than_the_body_timeout_gets_408(server):
    key = new_account(server.database_url)["Authorization"]
    body = json.dumps({"name": "Never finished"}).encode()
    head = (f"POST /v1/partners HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    conn = _connect(server)
    started = time.monotonic()
    conn.sendall(head + body[:3])
    _error(_read_reply(conn), 408, "request_timeout")
    assert BODY_TIMEOUT - 0.5 < time.monotonic() - started < BODY_TIMEOUT + 5


def test_a_body_still_trickling_after_the_answer_is_cut_off_at_the_body_timeout(server):
    head = (b"POST /v1/partners HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
    conn = _connect(server)
    started = time.monotonic()
    conn.sendall(head)  # no key: answered 401 at once, but the body never ends
    conn.settimeout(0.5)
    reply = b""
    while time.monotonic() - started < BODY_TIMEOUT + 8:
        try:  # a byte every half second keeps the connection from ever idling
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk
        except TimeoutError:
            _send_all(conn, b" ")
        except ConnectionResetError:
            break
    conn.close()
    assert reply.startswith(b"HTTP/1.1 401 ") and b" 408 " not in reply, reply
    assert BODY_TIMEOUT - 0.5 < time.monotonic() - started < BODY_TIMEOUT + 5


def test_many_slow_clients_are_all_let_go_and_the_server_still_answers(server):
    conns = [_connect(server) for _ in range(50)]
    for conn in conns:
        _send_all(conn, b"GET /v1/health HTTP/1.1\r\n")
    deadline = time.monotonic() + HEADER_TIMEOUT + 10
    for conn in conns:
        conn.settimeout(max(0.1, deadline - time.monotonic()))
        assert _read_reply(conn).startswith(b"HTTP/1.1 408 ")
    conn = _connect(server)
    conn.sendall(_get())
    assert _read_reply(conn).startswith(b"HTTP/1.1 200 ")
