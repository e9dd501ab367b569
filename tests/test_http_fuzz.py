"""A fuzz pass over the HTTP layer itself, below what Schemathesis reaches: raw requests
over sockets to a real `certapi serve`, with odd paths (`//`, `%2F`, `%00`, `..`, raw
bytes), odd methods, long and odd headers, odd Host values and broken framing.

Every answer must be below 500 and either a success, Swagger UI's own relative
redirect, the error envelope, or the server's own clean 400/431 for a request it cannot
parse; the server log must hold no traceback. The cases are a fixed list plus a seeded
random mix, bounded in number (about 630); each request has a socket timeout. Run against
`certapi serve` (uvicorn) and `serve --workers 2` (gunicorn)."""
import json
import random
import re
import socket

import pytest

from tests.databases import backend, fresh_database
from tests.live_server import LiveServer, new_account, read_until_closed

UUID = "3f2b8c1e-7d4a-4c2e-9b1a-2f6d8e0c4a51"
SEED = 20261130
RANDOM_CASES = 250
SOCKET_TIMEOUT = 15

PATHS = [
    "/v1/health", "/v1/partners", f"/v1/partners/{UUID}", f"/v1/partners/{UUID}/users",
    "/v1/users", f"/v1/users/{UUID}/enrollments", "/v1/certifications",
    f"/v1/certifications/{UUID}/enrollments/{UUID}/assessment-attempts",
    "/v1/openapi.json", "/v1/ui/", "/", "/v1",
]
PATH_MUTATIONS = [
    lambda p: p.replace("/v1/", "/v1//", 1), lambda p: p + "/", lambda p: "/" + p,
    lambda p: p + "%2F", lambda p: p + "%2f..%2f", lambda p: p + "%00", lambda p: p + "%0a%0d",
    lambda p: p + "/..", lambda p: p + "/../../etc/passwd", lambda p: p.replace("/v1", "/v1/."),
    lambda p: p + "/%2e%2e/", lambda p: p + "%", lambda p: p + "%zz", lambda p: p + "%ff%fe",
    lambda p: p + "%1b[31m", lambda p: p + "%e2%80%ae", lambda p: p + "?page=%D9%A3",
    lambda p: p + "?page=" + "9" * 5000, lambda p: p + "?per_page=%00", lambda p: p + "?a=1&a=2",
    lambda p: p + ";x=1", lambda p: p + "#frag", lambda p: p + "/" + "a" * 6000,
    lambda p: p.upper(), lambda p: p + "\xe9", lambda p: p + "?" + "&".join(["x=1"] * 300),
]
METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "get", "BREW"]
HOSTS = [None, "", "127.0.0.1", "evil.example", "a" * 300, "a" * 64 + ".example", "a..b", "a b",
         "[::1]:80", "x_y:8080", "host:99999", "\xe9.example", "a/b", "a@b", "127.0.0.1:0"]
EXTRA_HEADERS = [
    [], [("X-Request-Id", "x\x1b[31m")], [("X-Request-Id", "a" * 200)],
    [("Authorization", "Bearer " + "k" * 5000)], [("Authorization", "Bearer \xff\xfe")],
    [("Authorization", "Api-Key")], [("Authorization", "Basic Zm9vOmJhcg==")],
    [("Content-Type", "APPLICATION/JSON; charset=latin-1")], [("Content-Type", "text/plain")],
    [("Content-Type", "application/json;;;")], [("Accept", "*/*" * 500)],
    [("X-Long", "v" * 30_000)], [(f"X-Many-{n}", "1") for n in range(300)],
    [("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Proto", "gopher")],
    [("Content-Length", "abc")], [("Content-Length", "-1")], [("Content-Length", "99999999999999999999")],
    [("Transfer-Encoding", "chunked")], [("Transfer-Encoding", "gzip, chunked")],
    [("Expect", "100-continue")], [("Connection", "upgrade"), ("Upgrade", "h2c")],
]
BODIES = [b"", b'{"name": "Fuzz"}', b"{", b"\xff\xfe", b'{"name": ' + b"1" * 5000 + b"}",
          b"0\r\n\r\n", b"zz\r\nbad\r\n", b'[' * 5000, b'{"score": 1e999}']


def request_bytes(method: str, path: str, host: str | None, headers: list, body: bytes,
                  key: str | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    if key is not None and not any(name == "Authorization" for name, _ in headers):
        lines.append(f"Authorization: Bearer {key}")
    framing = {name.lower() for name, _ in headers} & {"content-length", "transfer-encoding"}
    if "transfer-encoding" in framing and not body.endswith(b"0\r\n\r\n"):
        body += b"0\r\n\r\n"  # a complete (if not valid) chunked body: nothing left to wait for
    if body and not framing:
        lines.append(f"Content-Length: {len(body)}")
        if not any(name == "Content-Type" for name, _ in headers):
            lines.append("Content-Type: application/json")
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body


def exchange(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as conn:
        try:
            conn.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before it read everything
        return read_until_closed(conn)


STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


def verdict(method: str, reply: bytes) -> str | None:
    """Why ``reply`` is not acceptable, or None."""
    match = STATUS_LINE.match(reply)
    if match is None:
        return f"no HTTP response: {reply[:80]!r}"
    status = int(match.group(1))
    head, _, body = reply.partition(b"\r\n\r\n")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if status >= 500:
        return f"{status}: {body[:200]!r}"
    if status in (400, 431) and not headers.get(b"content-type", b"").startswith(b"application/json"):
        return None  # the HTTP server's own answer to a request it cannot parse
    if 300 <= status < 400:
        location = headers.get(b"location", b"")
        ok = location.startswith(b"/") and not location.startswith(b"//")
        return None if ok else f"{status} redirect to {location!r}"
    if status < 300 or method == "HEAD":
        return None
    if not headers.get(b"content-type", b"").startswith(b"application/json"):
        return f"{status} without JSON: {head[:200]!r}"
    if headers.get(b"transfer-encoding") == b"chunked":
        return None  # not expected for an error; the envelope is sized
    try:
        document = json.loads(body)
    except ValueError:
        return f"{status} body is not JSON: {body[:200]!r}"
    if set(document) != {"error"} or set(document["error"]) != {"code", "message"}:
        return f"{status} is not the envelope: {body[:200]!r}"
    return None


def cases(key: str) -> list[tuple[str, bytes]]:
    fixed = []
    for path in PATHS:
        for mutate in PATH_MUTATIONS:
            fixed.append(("GET", mutate(path), "127.0.0.1", [], b""))
    for host in HOSTS:
        fixed.append(("GET", "/v1/partners", host, [], b""))
        fixed.append(("GET", "/v1/health", host, [], b""))
    for headers in EXTRA_HEADERS:
        fixed.append(("POST", "/v1/partners", "127.0.0.1", headers, b'{"name": "Fuzz"}'))
    for method in METHODS:
        fixed.append((method, "/v1/partners", "127.0.0.1", [], b""))
    fixed += [("GET", "*", "127.0.0.1", [], b""), ("OPTIONS", "*", "127.0.0.1", [], b""),
              ("GET", "http://evil.example/v1/health", "127.0.0.1", [], b""),
              ("GET", "", "127.0.0.1", [], b""), ("GET", "v1/health", "127.0.0.1", [], b"")]
    rng = random.Random(SEED)
    mixed = []
    for _ in range(RANDOM_CASES):
        path = rng.choice(PATHS)
        for mutate in rng.sample(PATH_MUTATIONS, rng.randint(0, 2)):
            path = mutate(path)
        mixed.append((rng.choice(METHODS), path, rng.choice(HOSTS), rng.choice(EXTRA_HEADERS),
                      rng.choice(BODIES)))
    return [(method, request_bytes(method, path, host, headers, body, key if n % 3 else None))
            for n, (method, path, host, headers, body) in enumerate(fixed + mixed)]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2], ids=["uvicorn", "gunicorn"])
def test_http_layer_fuzz_no_5xx_and_every_answer_clean(tmp_path, workers):
    with fresh_database(backend(), tmp_path, "httpfuzz") as url:
        server = LiveServer(url, tmp_path / "server.log", workers=workers).start()
        try:
            key = new_account(url)["Authorization"].removeprefix("Bearer ")
            failures = []
            all_cases = cases(key)
            for method, raw in all_cases:
                problem = verdict(method, exchange(server.port, raw))
                if problem is not None:
                    failures.append(f"{raw[:160]!r}\n    -> {problem}")
            log = server.log()
        finally:
            server.kill()
    assert len(all_cases) > 500
    assert not failures, f"{len(failures)} of {len(all_cases)}:\n" + "\n".join(failures[:30])
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
