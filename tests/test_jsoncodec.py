"""certapi.jsoncodec: orjson where it reads and writes what the stdlib json would, the
stdlib wherever the two differ."""
import datetime
import decimal
import json
import uuid

import pytest

from certapi import jsoncodec


@pytest.mark.parametrize("raw", [
    b'{"user_uuid":"00000000-0000-4000-8000-000000000001","partnership_uuid":null}',
    b'  {"score" : 85.5, "n": -0, "big": 922337203685477580, "list": [true, false, 1e10]}\n',
    '{"name":"Zoë ✓"}'.encode(),
])
def test_fast_path_reads_what_the_stdlib_reads(raw):
    body = jsoncodec.fast_loads(raw)
    assert body is not jsoncodec.MISS
    assert body == json.loads(raw) and jsoncodec.loads(raw) == json.loads(raw)


@pytest.mark.parametrize("raw", [
    b'{"max_attempts":123456789012345678901234}',  # orjson would read a float
    b"[NaN]", b"[1e400]",  # not JSON, or not a finite number
    b'{"a":"\\ud800"}',  # a lone surrogate
    b'{"a":"\xff"}',  # not UTF-8
    b"\xef\xbb\xbf{}",  # a byte-order mark
    b"[" * 2000 + b"]" * 2000,  # nested deeper than orjson goes
])
def test_where_the_readers_could_differ_the_stdlib_decides(raw):
    assert jsoncodec.fast_loads(raw) is jsoncodec.MISS


def test_a_long_integer_stays_an_integer():
    assert jsoncodec.loads(b'{"n":123456789012345678901234}') == {"n": 123456789012345678901234}


@pytest.mark.parametrize("data", [
    {"a": 1, "b": [1.5, None, True, "x"], "c": {"d": "é"}},
    {"n": 10**30},  # beyond orjson's 64 bits: written by the stdlib
    {1: "non-string key"},
])
def test_dumps_is_compact_and_reads_back(data):
    text = jsoncodec.dumps(data)
    assert ", " not in text and ": " not in text
    assert json.loads(text) == json.loads(json.dumps(data))


def test_dumps_writes_what_connexions_encoder_writes_for_other_types():
    moment = datetime.datetime(2026, 1, 2, 3, 4, 5)
    when = uuid.UUID("00000000-0000-4000-8000-000000000001")
    data = {"naive": moment, "aware": moment.replace(tzinfo=datetime.UTC),
            "day": moment.date(), "price": decimal.Decimal("1.5"), "id": when}
    assert json.loads(jsoncodec.dumps(data)) == {
        "naive": "2026-01-02T03:04:05Z", "aware": "2026-01-02T03:04:05+00:00",
        "day": "2026-01-02", "price": 1.5, "id": str(when)}
    with pytest.raises(TypeError):
        jsoncodec.dumps({"x": object()})


def test_the_app_reads_bodies_through_it(app):
    assert isinstance(app.app.json, jsoncodec.OrjsonProvider)


def test_an_integer_beyond_64_bits_is_judged_as_an_integer(client, tenant):
    # orjson alone would read it as a float: "Expected integer" instead of the range.
    response = client.post("/v1/certifications",
                           headers={**tenant.headers, "Content-Type": "application/json"},
                           content=b'{"name":"N","max_attempts":123456789012345678901234}')
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "body/max_attempts: Must be at most 1000"


def test_non_ascii_text_reads_back_from_a_response(client, tenant):
    response = client.post("/v1/certifications", headers=tenant.headers,
                           json={"name": "Zoë ✓ 認定"})
    assert response.status_code == 201
    assert response.json()["name"] == "Zoë ✓ 認定"
