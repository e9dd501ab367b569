"""Hostile requests answered safely (issue 9's request-path findings): odd paths are a 404
envelope and never a redirect or a 500, numbers too long to convert are a 422 naming the
field, query integers are ASCII digits, a bad Host is a clear 422, the access log cannot
be forged, and an unreachable or unwritable database is a 503 with Retry-After for every
operation, logged as an outage and not as a bug."""
import io
import json
import logging
import re
import time

import pytest

from certapi import logs
from models import database
from models.db import SQLITE_PRAGMAS, SerialWritesSqliteDatabase, init_database
from tests.conftest import ABSENT_UUID, OPERATIONS, expect_error
from tests.databases import backend
from tests.live_server import free_port

# --- findings 1 and 6: `//` and trailing slashes ------------------------------------------

ODD_PATHS = [
    ("GET", "/v1//health"), ("GET", "/v1/users//x"), ("POST", "/v1//partners"),
    ("GET", "//v1/partners"), ("GET", "/v1/partners/"), ("GET", "/v1/health/"),
    ("POST", "/v1/partners/"), ("GET", f"/v1/partners/{ABSENT_UUID}/"),
    ("GET", "/v1/partners/%2F"), ("DELETE", f"/v1/certifications/{ABSENT_UUID}//enrollments"),
]


@pytest.mark.parametrize(("method", "path"), ODD_PATHS)
def test_empty_segments_and_trailing_slashes_are_404_never_a_redirect(client, tenant, caplog,
                                                                      method, path):
    headers = {**tenant.headers, "Host": "evil.example"}
    with caplog.at_level(logging.WARNING, logger="certapi"):
        response = client.request(method, path, headers=headers, json={"name": "x"},
                                  follow_redirects=False)
    expect_error(response, 404, "not_found")
    assert "location" not in response.headers
    assert not caplog.records  # nothing logged as a bug


def test_swagger_ui_still_answers_under_its_slash(client):
    assert client.get("/v1/ui/").status_code == 200


# --- finding 2: integers over Python's conversion limit ----------------------------------

@pytest.mark.parametrize("digits", ["1" * 4301, "-" + "9" * 5000, "1" * 100_000])
def test_integer_too_long_to_convert_is_422_naming_the_field(client, tenant, caplog, digits):
    body = b'{"name": "Cloud", "max_attempts": ' + digits.encode() + b"}"
    with caplog.at_level(logging.WARNING, logger="certapi"):
        response = client.post("/v1/certifications", content=body,
                               headers={**tenant.headers, "Content-Type": "application/json"})
    assert expect_error(response, 422, "validation_error") == "body/max_attempts: Number too large"
    assert not caplog.records


def test_long_integer_in_a_nested_place_is_named(client, tenant):
    body = b'{"name": "Cloud", "x": [1, {"y": ' + b"7" * 4400 + b"}]}"
    response = client.post("/v1/certifications", content=body,
                           headers={**tenant.headers, "Content-Type": "application/json"})
    assert expect_error(response, 422, "validation_error") == "body/x/1/y: Number too large"


def test_integer_at_the_limit_is_read_as_a_number(client, tenant):
    body = b'{"name": "Cloud", "max_attempts": ' + b"1" * 4300 + b"}"
    response = client.post("/v1/certifications", content=body,
                           headers={**tenant.headers, "Content-Type": "application/json"})
    assert expect_error(response, 422, "validation_error") .startswith("body/max_attempts: Must be at most ")


# --- finding 12: query integers and the Host header --------------------------------------

@pytest.mark.parametrize("value", ["\u0663", "\u0661\u0662", "\uff11", " 1", "1 ", "+1", "1_0", "\u00b2"])
def test_query_integers_are_ascii_digits_only(client, tenant, value):
    response = client.get("/v1/partners", params={"page": value}, headers=tenant.headers)
    assert expect_error(response, 422, "validation_error") == "query/page: Expected integer"


def test_plain_query_integers_still_work(client, tenant):
    response = client.get("/v1/partners", params={"page": "2", "per_page": "7"}, headers=tenant.headers)
    assert response.status_code == 200
    assert response.json()["pagination"] | {"total": 0, "total_pages": 0} == {
        "page": 2, "per_page": 7, "total": 0, "total_pages": 0}


@pytest.mark.parametrize("host", ["a" * 256, "a" * 64, "a..b", ".a", "ex ample", "a/b", "a@b",
                                  "host:port", "[zz]"])
@pytest.mark.parametrize("path", ["/v1/health", "/v1/partners"])
def test_a_host_that_is_no_host_name_is_a_clear_422(client, tenant, host, path):
    response = client.get(path, headers={**tenant.headers, "Host": host})
    message = expect_error(response, 422, "validation_error")
    assert message.startswith("header/Host: Must be a host name")
    assert "browser" not in message


@pytest.mark.parametrize("host", ["a" * 63, "api.example.com", "api.example.com.", "x_y:8080",
                                  "127.0.0.1:8080", "[::1]:8080", "localhost"])
def test_ordinary_hosts_are_served(client, host):
    assert client.get("/v1/health", headers={"Host": host}).status_code == 200


# --- finding 3: the access log cannot be forged ------------------------------------------

FORGERIES = ["%0a2026-11-30 INFO certapi.access GET /v1/admin 200", "%0d%0aforged", "%00nul",
             "%1b[31mred%1b[0m", "%e2%80%a8line-separator", "%e2%80%aeevil", "x%20200%201.0ms%20request_id=1"]


@pytest.fixture
def log_stream():
    """What the certapi loggers write, through the service's own formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("certapi")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)

    def use(kind: str) -> io.StringIO:
        handler.setFormatter(logs.formatter(kind))
        return stream

    yield use
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.mark.parametrize("tail", FORGERIES)
def test_text_access_log_is_one_line_per_request_whatever_the_path(client, tenant, log_stream, tail):
    stream = log_stream("text")
    response = client.get(f"/v1/health{tail}", headers=tenant.headers)
    assert response.status_code < 500
    lines = stream.getvalue().splitlines()
    access = [line for line in lines if " certapi.access " in line]
    assert len(access) == 1 and len(lines) == 1, lines
    assert re.fullmatch(r"\S+ \S+ INFO certapi\.access [A-Z]+ [!-~]+ \d{3} \d+\.\dms request_id=[0-9a-f]{32}",
                        access[0]), access[0]
    assert "\x1b" not in stream.getvalue() and "\u2028" not in stream.getvalue()


def test_text_error_log_keeps_a_traceback_off_column_zero(log_stream):
    stream = log_stream("text")
    try:
        raise RuntimeError("boom\n2026-11-30 00:00:00,000 INFO certapi.access GET / 200")
    except RuntimeError:
        logging.getLogger("certapi.error").exception("unhandled error request_id=abc\nforged")
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("unhandled error request_id=abc\\nforged")
    assert all(line.startswith("    ") for line in lines[1:]) and len(lines) > 2
    assert "    2026-11-30 00:00:00,000 INFO certapi.access GET / 200" in lines  # indented


def test_json_access_log_has_the_request_fields_and_nothing_secret(client, tenant, log_stream):
    stream = log_stream("json")
    email = "logged.person@example.com"
    response = client.post("/v1/users", json={"email": email}, headers=tenant.headers)
    assert response.status_code == 201
    client.get("/v1/health%0aforged")
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(records) == 2
    first, second = records
    assert first["logger"] == "certapi.access" and first["level"] == "INFO"
    assert {k: first[k] for k in ("method", "path", "status", "operation_id", "account")} == {
        "method": "POST", "path": "/v1/users", "status": 201, "operation_id": "createUser",
        "account": tenant.uuid}
    assert first["request_id"] == response.headers["x-request-id"]
    assert isinstance(first["duration_ms"], float) and "time" in first
    text = stream.getvalue()
    assert email not in text and tenant.key not in text and tenant.key[10:] not in text
    assert second["path"] == "/v1/health\nforged" and second["status"] == 404
    assert second["operation_id"] is None and second["account"] is None


def test_json_error_log_holds_the_traceback_in_one_line(log_stream):
    stream = log_stream("json")
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        logging.getLogger("certapi.error").exception("unhandled error request_id=abc")
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "ERROR" and "RuntimeError: boom\nsecond line" in record["exc_info"]


def test_log_format_setting(monkeypatch):
    monkeypatch.setenv("CERTAPI_LOG_FORMAT", "JSON")
    assert logs.log_format() == "json"
    monkeypatch.delenv("CERTAPI_LOG_FORMAT")
    assert logs.log_format() == "text"
    monkeypatch.setenv("CERTAPI_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="CERTAPI_LOG_FORMAT"):
        logs.log_format()


# --- finding 11: the database unreachable or unwritable ----------------------------------

def _concrete(regex: re.Pattern) -> str:
    return regex.pattern[1:-1].replace("[^/]+", ABSENT_UUID)


def _unreachable_url(tmp_path) -> str:
    if backend() == "sqlite":
        return f"sqlite:///{tmp_path / 'gone' / 'certapi.db'}"  # its directory does not exist
    return f"postgresql://certapi@127.0.0.1:{free_port()}/certapi?connect_timeout=2"


def _expect_unavailable(response, op_id):
    assert response.status_code == 503, (op_id, response.text)
    assert response.headers["retry-after"].isdigit() and int(response.headers["retry-after"]) >= 1
    if op_id == "getHealth":
        assert response.json() == {"status": "unavailable"}
    elif op_id == "getReadiness":
        assert response.json()["failing"] == ["database", "migrations"]
    else:
        expect_error(response, 503, "service_unavailable")


def test_every_operation_is_503_while_the_database_is_unreachable(client, tenant, tmp_path, caplog,
                                                                   keep_database_binding):
    init_database(_unreachable_url(tmp_path))
    with caplog.at_level(logging.INFO, logger="certapi"):
        for method, regex, op_id, _ in OPERATIONS:
            body = {} if method in ("POST", "PATCH", "PUT") else None
            response = client.request(method, _concrete(regex), headers=tenant.headers, json=body)
            _expect_unavailable(response, op_id)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if r.exc_info]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all(m.startswith("database unavailable request_id=") for m in warnings)
    assert all(r.request_id for r in caplog.records if r.levelno == logging.WARNING)


sqlite_only = pytest.mark.skipif(
    backend() != "sqlite", reason="read-only and full files are SQLite's; PostgreSQL's outage "
                                  "is covered above and in test_database_outage.py")


def _rebind(path: str, **pragmas) -> None:
    database.initialize(SerialWritesSqliteDatabase(
        path, pragmas={**SQLITE_PRAGMAS, **pragmas}, check_same_thread=False, lock_type="IMMEDIATE"))


def _file_of_session_database() -> str:
    return database.obj.database


@sqlite_only
def test_read_only_database_reads_work_and_writes_are_503(client, tenant, caplog, keep_database_binding):
    path = _file_of_session_database()
    database.initialize(SerialWritesSqliteDatabase(
        f"file:{path}?mode=ro", uri=True, check_same_thread=False,
        pragmas={k: v for k, v in SQLITE_PRAGMAS.items() if k != "journal_mode"}))
    with caplog.at_level(logging.INFO, logger="certapi"):
        assert client.get("/v1/partners", headers=tenant.headers).status_code == 200
        response = client.post("/v1/partners", json={"name": "Nope"}, headers=tenant.headers)
        _expect_unavailable(response, "createPartner")
        _expect_unavailable(client.get("/v1/health"), "getHealth")  # the write probe fails
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@sqlite_only
def test_full_disk_writes_are_503_and_the_service_recovers(client, tenant, caplog, keep_database_binding):
    path = _file_of_session_database()
    (pages,) = database.execute_sql("PRAGMA page_count").fetchone()
    database.close()
    _rebind(path, max_page_count=pages)  # SQLite's own "database or disk is full"
    with caplog.at_level(logging.INFO, logger="certapi"):
        response = client.post("/v1/partners", json={"name": "Big", "description": "x" * 5000},
                               headers=tenant.headers)
        _expect_unavailable(response, "createPartner")
    assert "database or disk is full" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    database.obj.close_all()
    _rebind(path)
    response = client.post("/v1/partners", json={"name": "Big", "description": "x" * 5000},
                           headers=tenant.headers)
    assert response.status_code == 201


@pytest.mark.skipif(backend() != "postgresql", reason="a read-only PostgreSQL session; SQLite's "
                                                     "read-only file is tested above")
def test_read_only_postgresql_reads_work_and_writes_are_503(client, tenant, caplog, database_url,
                                                            keep_database_binding):
    sep = "&" if "?" in database_url else "?"
    init_database(f"{database_url}{sep}options=-c%20default_transaction_read_only%3Don")
    with caplog.at_level(logging.INFO, logger="certapi"):
        assert client.get("/v1/partners", headers=tenant.headers).status_code == 200
        response = client.post("/v1/partners", json={"name": "Nope"}, headers=tenant.headers)
        _expect_unavailable(response, "createPartner")
        _expect_unavailable(client.get("/v1/health"), "getHealth")  # the write probe fails
    assert "read-only" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_no_free_pooled_connection_is_503(client, tenant, monkeypatch, caplog):
    from playhouse.pool import MaxConnectionsExceeded

    from models.account import ApiKey

    def exhausted(*args, **kwargs):
        raise MaxConnectionsExceeded("Exceeded maximum connections.")

    monkeypatch.setattr(ApiKey, "find_active", exhausted)
    with caplog.at_level(logging.INFO, logger="certapi"):
        _expect_unavailable(client.get("/v1/partners", headers=tenant.headers), "listPartners")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_health_is_503_when_the_write_probe_fails(client, monkeypatch):
    from peewee import OperationalError

    import handlers.health

    def full() -> None:
        raise OperationalError("database or disk is full")

    monkeypatch.setattr(handlers.health, "check_writable", full)
    _expect_unavailable(client.get("/v1/health"), "getHealth")


@pytest.mark.slow
def test_served_with_json_logs_every_line_is_one_json_object(tmp_path, monkeypatch):
    import httpx

    from tests.databases import fresh_database
    from tests.live_server import LiveServer

    monkeypatch.setenv("CERTAPI_LOG_FORMAT", "json")
    with fresh_database(backend(), tmp_path, "jsonlog") as url:
        server = LiveServer(url, tmp_path / "server.log", workers=1).start()
        try:
            response = httpx.get(f"{server.url}/v1/health%0a%1b[31mforged")
            assert response.status_code == 404
            # The access line is written just after the answer goes out.
            deadline = time.monotonic() + 20
            while response.headers["x-request-id"] not in server.log():
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.05)
        finally:
            server.kill()
    records = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    forged = [r for r in records if r.get("path") == "/v1/health\n\x1b[31mforged"]
    assert len(forged) == 1 and forged[0]["logger"] == "certapi.access"
    assert forged[0]["request_id"] == response.headers["x-request-id"]
