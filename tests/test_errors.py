"""Every error leaves the service as the envelope with a JSON content type: unknown routes,
wrong methods, wrong media types, oversized and malformed bodies, bad parameters, bugs.
The lists of paths and operations come from the spec, so new ones are covered as added."""
import json
import logging
import re
import uuid

import pytest

import handlers.partners
from certapi import auth
from certapi.app import create_app
from certapi.config import Settings
from tests.conftest import METHODS, SPEC, RecordingClient, expect_error, make_tenant

SMALL_LIMIT = 256


def concrete(path: str, **values: str) -> str:
    """A callable URL for a spec path: each {param} from ``values`` or a well-formed uuid."""
    return "/v1" + re.sub(r"\{([^}]+)\}", lambda m: values.get(m[1], str(uuid.uuid4())), path)


def resolve(schema: dict) -> dict:
    ref = schema.get("$ref")
    return resolve(SPEC["components"]["schemas"][ref.rsplit("/", 1)[1]]) if ref else schema


BODY_OPERATIONS = [
    pytest.param(method.upper(), path,
                 resolve(op["requestBody"]["content"]["application/json"]["schema"]),
                 id=op["operationId"])
    for path, item in SPEC["paths"].items()
    for method, op in item.items()
    if method in METHODS and "requestBody" in op
]
PATHS = [pytest.param(path, sorted(m.upper() for m in item if m in METHODS), id=path)
         for path, item in SPEC["paths"].items()]


def params_of(path: str, op: dict) -> list[dict]:
    item = SPEC["paths"][path]
    found = [*item.get("parameters", []), *op.get("parameters", [])]
    return [SPEC["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p
            for p in found]


ALL_OPERATIONS = [pytest.param(method.upper(), path, params_of(path, op),
                               id=op["operationId"])
                  for path, item in SPEC["paths"].items()
                  for method, op in item.items() if method in METHODS]


def send(client, method, url, body: bytes, headers, content_type="application/json"):
    return client.request(method, url, content=body,
                          headers={**headers, "Content-Type": content_type})


# --- unknown routes and wrong methods ---------------------------------------------------

@pytest.mark.parametrize("url", ["/", "/nope", "/v1", "/v1/nope", "/v1/partners/x/y/z",
                                 f"/v1/certifications/{uuid.uuid4()}/nope"])
def test_unknown_route_is_404_envelope(client, tenant, url):
    assert expect_error(client.get(url, headers=tenant.headers), 404, "not_found")


@pytest.mark.parametrize("path, allowed", PATHS)
def test_every_missing_method_is_405_with_full_allow(client, tenant, path, allowed):
    url = concrete(path)
    missing = [m.upper() for m in METHODS if m.upper() not in allowed]
    assert missing, "every path lacks at least PUT"
    for method in missing:
        response = client.request(method, url, headers=tenant.headers)
        expect_error(response, 405, "method_not_allowed")
        assert sorted(m.strip() for m in response.headers["allow"].split(",")) == allowed, method


def test_405_comes_before_auth(client):
    response = client.put("/v1/partners")
    expect_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, POST"


# --- media type and size ----------------------------------------------------------------

@pytest.mark.parametrize("method, path, schema", BODY_OPERATIONS)
def test_text_plain_body_is_415(client, tenant, method, path, schema):
    response = send(client, method, concrete(path), b"name=x", tenant.headers, "text/plain")
    expect_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded",
                                          "application/vnd.api+json", "multipart/form-data"])
def test_other_media_types_are_415(client, tenant, content_type):
    response = send(client, "POST", "/v1/partners", b'{"name": "Acme"}', tenant.headers, content_type)
    expect_error(response, 415, "unsupported_media_type")


def test_body_without_content_type_is_415(client, tenant):
    # Connexion would take it for JSON, then hand the handler raw bytes (a 500).
    response = client.post("/v1/partners", content=b'{"name": "Acme"}', headers=tenant.headers)
    expect_error(response, 415, "unsupported_media_type")


def test_media_type_is_case_insensitive_and_still_validated(client, tenant):
    ok = send(client, "POST", "/v1/partners", b'{"name": "Acme"}', tenant.headers, "Application/JSON")
    assert ok.status_code == 201, ok.text
    bad = send(client, "POST", "/v1/partners", b'{"name": 5}', tenant.headers, "APPLICATION/JSON")
    assert expect_error(bad, 422, "validation_error") == "body/name: Expected string"


def test_charset_parameter_is_ignored_json_is_utf8(client, tenant):
    body = '{"name": "Café"}'.encode()
    ok = send(client, "POST", "/v1/partners", body, tenant.headers, "application/json;charset=latin-1")
    assert ok.status_code == 201, ok.text
    assert ok.json()["name"] == "Café"


@pytest.fixture(scope="module")
def small(app, database_url):
    """A second app on the same database whose body limit is SMALL_LIMIT bytes. Building it
    rebinds the global database proxy to the same URL, which the session app shares."""
    application = create_app(Settings(database_url=database_url, max_body_bytes=SMALL_LIMIT,
                                      key_cache_seconds=0, validate_responses=True))
    with application.test_client() as raw:
        yield RecordingClient(raw)


def oversized() -> bytes:
    return json.dumps({"name": "x" * SMALL_LIMIT}).encode()


@pytest.mark.parametrize("method, path, schema", BODY_OPERATIONS)
def test_body_over_limit_with_content_length_is_413(small, method, path, schema):
    tenant = make_tenant()
    response = send(small, method, concrete(path), oversized(), tenant.headers)
    message = expect_error(response, 413, "payload_too_large")
    assert str(SMALL_LIMIT) in message


@pytest.mark.parametrize("method, path, schema", BODY_OPERATIONS)
def test_streamed_body_over_limit_is_413(small, method, path, schema):
    tenant = make_tenant()
    body = oversized()
    chunks = (body[i:i + 64] for i in range(0, len(body), 64))  # no Content-Length: chunked
    response = small.request(method, concrete(path), content=chunks,
                             headers={**tenant.headers, "Content-Type": "application/json"})
    expect_error(response, 413, "payload_too_large")


def test_body_at_the_limit_is_accepted(small):
    tenant = make_tenant()
    body = b'{"name": "Acme"}'
    body = body[:-1] + b" " * (SMALL_LIMIT - len(body)) + b"}"
    assert len(body) == SMALL_LIMIT
    response = send(small, "POST", "/v1/partners", body, tenant.headers)
    assert response.status_code == 201, response.text


def test_streamed_body_under_limit_is_read(client, tenant):
    # Connexion alone takes a body without Content-Length for no body at all.
    parts = iter([b'{"name": ', b'"Streamed"}'])
    response = client.post("/v1/partners", content=parts,
                           headers={**tenant.headers, "Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Streamed"


def test_default_body_limit_is_one_mebibyte(monkeypatch):
    monkeypatch.delenv("CERTAPI_MAX_BODY_BYTES", raising=False)
    assert Settings().max_body_bytes == 1024 * 1024


def test_content_length_that_is_not_a_number_is_422(client, tenant):
    response = client.post("/v1/partners", content=b'{"name": "A"}',
                           headers={**tenant.headers, "Content-Type": "application/json",
                                    "Content-Length": "ten"})
    assert expect_error(response, 422, "validation_error").startswith("header/Content-Length")


# --- malformed input -----------------------------------------------------------------------

def wrong_type_body(schema: dict) -> tuple[dict, str]:
    """A body whose one field has a type no property accepts, and the place it names."""
    name = (schema.get("required") or sorted(schema["properties"]))[0]
    wrong = "text" if resolve(schema["properties"][name]).get("type") == "array" else [1]
    return {name: wrong}, f"body/{name}"


@pytest.mark.parametrize("method, path, schema", BODY_OPERATIONS)
def test_malformed_bodies_are_422_naming_the_place(client, tenant, method, path, schema):
    url = concrete(path)
    cases = [
        (b'{"name": ', "body: Invalid JSON"),
        (b'{"name": "\xff\xfe"}', "body: Not valid UTF-8 text"),
        (b'\xef\xbb\xbf{}', "body: Invalid JSON"),
        (b'[1, 2]', "body: Expected object"),
        (b'"text"', "body: Expected object"),
        (b'42', "body: Expected object"),
        (b'{"x": "\\ud800"}', "body/x: Not valid Unicode text"),
        (b'{"x": NaN}', "body: Invalid JSON (NaN "),
        (b'{"x": -Infinity}', "body: Invalid JSON (-Infinity "),
        (b'[' * 100_000 + b']' * 100_000, "body: "),
        (b'', "body: Required"),
    ]
    wrong, where = wrong_type_body(schema)
    cases.append((json.dumps(wrong).encode(), f"{where}: Expected "))
    cases.append((json.dumps({**wrong, "not_a_field": 1}).encode(), "body/"))
    for body, prefix in cases:
        response = send(client, method, url, body, tenant.headers)
        message = expect_error(response, 422, "validation_error")
        assert message.startswith(prefix), (body[:40], message)


def test_nan_is_not_json_and_never_reaches_the_database(client, tenant):
    # NaN passes minimum/maximum (every comparison is false); stored, it became a 409.
    response = send(client, "POST", "/v1/certifications", b'{"name": "C", "passing_score": NaN}',
                    tenant.headers)
    assert expect_error(response, 422, "validation_error") == "body: Invalid JSON (NaN is not a JSON value)"


def test_unknown_body_field_is_named(client, tenant):
    response = client.post("/v1/partners", json={"name": "A", "colour": "red"}, headers=tenant.headers)
    assert expect_error(response, 422, "validation_error") == "body/colour: Unknown field"


def test_lone_surrogate_in_a_valid_field_is_422_not_500(client, tenant):
    response = send(client, "POST", "/v1/partners", b'{"name": "Acme \\udc80"}', tenant.headers)
    assert expect_error(response, 422, "validation_error") == "body/name: Not valid Unicode text"
    paired = send(client, "POST", "/v1/partners", b'{"name": "Acme \\ud83d\\ude00"}', tenant.headers)
    assert paired.status_code == 201 and paired.json()["name"] == "Acme \U0001F600"


@pytest.mark.parametrize("method, path, params", ALL_OPERATIONS)
def test_bad_parameters_are_422_naming_the_place(client, tenant, method, path, params):
    url = concrete(path)
    for param in params:
        if param["in"] == "path":
            bad = concrete(path, **{param["name"]: "not-a-uuid"})
            response = client.request(method, bad, headers=tenant.headers)
            message = expect_error(response, 422, "validation_error")
            assert message.startswith(f"path/{param['name']}: "), message
        elif param["in"] == "query":
            response = client.request(method, url, params={param["name"]: "[]"}, headers=tenant.headers)
            message = expect_error(response, 422, "validation_error")
            assert message.startswith(f"query/{param['name']}: "), message
    response = client.request(method, url, params={"no_such_param": "1"}, headers=tenant.headers)
    assert expect_error(response, 422, "validation_error") == "query/no_such_param: Unknown parameter"


# --- bugs --------------------------------------------------------------------------------------

def test_handler_exception_is_500_envelope_traceback_only_in_log(client, tenant, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(handlers.partners, "paginate", broken)
    with caplog.at_level(logging.ERROR, logger="certapi"):
        response = client.get("/v1/partners", headers=tenant.headers)
    expect_error(response, 500, "internal_error")
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert "Traceback (most recent call last)" in caplog.text
    assert "RuntimeError: secret internal detail" in caplog.text
    # The traceback names the request, so it can be matched to its access-log line.
    assert f"unhandled error request_id={response.headers['x-request-id']}" in caplog.text


def test_exception_outside_flask_is_500_envelope(client, tenant, monkeypatch, caplog):
    # The key lookup runs in Connexion's security layer, before Flask is reached.
    def broken(key):
        raise RuntimeError("lookup exploded")

    monkeypatch.setattr(auth, "_lookup", broken)
    with caplog.at_level(logging.ERROR, logger="certapi"):
        response = client.get("/v1/partners", headers=tenant.headers)
    expect_error(response, 500, "internal_error")
    assert "exploded" not in response.text
    assert "RuntimeError: lookup exploded" in caplog.text
    assert f"unhandled error request_id={response.headers['x-request-id']}" in caplog.text
