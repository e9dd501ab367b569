"""certapi.schema_check's fast yes must be the request validator's answer exactly: a value
it accepts skips jsonschema, so one it wrongly accepted would reach the handlers unchecked.
Compared on every parameter and body schema of the spec (and each of their sub-schemas),
with values built near each schema's edges and arbitrary JSON."""
import datetime
import re

import pytest
from connexion.spec import Specification
from connexion.validators.parameter import draft4_format_checker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certapi import schema_check
from certapi.spec import SPEC_PATH
from certapi.validation import RequestValidator, _compiled, _ecma_matches, first_error


def compile_check(schema):
    return schema_check.compile_check(schema, RequestValidator.VALIDATORS, _ecma_matches,
                                      draft4_format_checker)


def full_accepts(schema, value) -> bool:
    return not any(True for _ in _compiled(schema)[1].iter_errors(value))


def request_schemas() -> list[tuple[str, dict]]:
    """Every schema Connexion validates a request with, resolved as Connexion resolves them,
    and each sub-schema of theirs."""
    spec = Specification.load(SPEC_PATH).spec
    found: dict[int, tuple[str, dict]] = {}

    def walk(place: str, schema: dict) -> None:
        if not isinstance(schema, dict) or id(schema) in found:
            return
        found[id(schema)] = (place, schema)
        for name, sub in schema.get("properties", {}).items():
            walk(f"{place}/{name}", sub)
        if isinstance(schema.get("items"), dict):
            walk(f"{place}/items", schema["items"])

    for path, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method not in {"get", "post", "patch", "put", "delete"}:
                continue
            for param in shared + operation.get("parameters", []):
                walk(f"{method.upper()} {path} {param['in']}/{param['name']}", param["schema"])
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                walk(f"{method.upper()} {path} body ({media})", content["schema"])
    return list(found.values())


SCHEMAS = request_schemas()

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),  # JSON has neither (the parsers refuse both)
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)


def near(schema: dict, depth: int = 0) -> st.SearchStrategy:
    """Mostly values the schema accepts, and values just past each of its bounds."""
    if not isinstance(schema, dict) or depth > 3:
        return JSON
    options = [JSON]
    if schema.get("nullable"):
        options.append(st.none())
    if "enum" in schema:
        options.append(st.sampled_from(schema["enum"]))
    kind = schema.get("type")
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength", 40)
        options.append(st.text(min_size=max(0, low - 1), max_size=min(high + 1, 300)))
        if "pattern" in schema:
            try:
                re.compile(schema["pattern"])
                options.append(st.from_regex(schema["pattern"]))
            except re.error:
                pass
        if schema.get("format") == "date-time":
            options.append(st.datetimes(timezones=st.just(datetime.UTC)).map(
                lambda moment: moment.isoformat()))
        if schema.get("format") == "email":
            options.append(st.emails())
    if kind in ("number", "integer"):
        low, high = schema.get("minimum", -10), schema.get("maximum", 10**6)
        options.append(st.integers(int(low) - 2, int(high) + 2))
        options.append(st.sampled_from([low, high, low - 0.5, high + 0.5, float(low), True, False]))
        if kind == "number":
            options.append(st.floats(low - 1, high + 1))
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        required = [name for name in schema.get("required", []) if name in properties]
        optional = {name: near(sub, depth + 1) for name, sub in properties.items()
                    if name not in required}
        fixed = st.fixed_dictionaries({name: near(properties[name], depth + 1) for name in required},
                                      optional=optional)
        options.append(fixed)
        options.append(st.tuples(fixed, st.text(max_size=6), JSON).map(
            lambda extra: {**extra[0], extra[1]: extra[2]}))
    if kind == "array" and isinstance(schema.get("items"), dict):
        options.append(st.lists(near(schema["items"], depth + 1),
                                min_size=max(0, schema.get("minItems", 0) - 1), max_size=4))
    return st.one_of(options)


@pytest.mark.parametrize(("place", "schema"), SCHEMAS, ids=[place for place, _ in SCHEMAS])
def test_the_fast_check_answers_as_the_validator(place, schema):
    check = compile_check(schema)
    if check is None:
        pytest.skip(f"{place}: no fast check (a keyword the checker does not implement)")

    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(near(schema))
    def agrees(value):
        assert check(value) == full_accepts(schema, value), value

    agrees()


def test_the_hot_schemas_are_compiled():
    """Path uuids, the bulk body and the write bodies: where the fast check is worth it."""
    places = {place: schema for place, schema in SCHEMAS}
    hot = [place for place in places if place.endswith(("path/uuid", "path/enrollment_uuid"))
           or place.startswith(("POST /certifications/{uuid}/enrollments body",
                                "POST /certifications/{uuid}/enrollments/bulk body",
                                "PATCH /certifications/{uuid}/enrollments/{enrollment_uuid} body"))]
    assert len(hot) >= 5, sorted(places)
    assert [place for place in hot if compile_check(places[place]) is None] == []
    compiled = sum(compile_check(schema) is not None for _, schema in SCHEMAS)
    assert compiled >= 0.8 * len(SCHEMAS)


UUID = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"


@pytest.mark.parametrize(("schema", "value"), [
    ({"type": "integer"}, 1.0),  # Draft 4: a float is no integer, even a whole one
    ({"type": "integer"}, True),
    ({"type": "number"}, False),
    ({"type": "string", "pattern": UUID}, "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d\n"),  # ECMA `$`
    ({"type": "string", "pattern": "^a$"}, "\ud800"),  # a lone surrogate matches nothing
    ({"type": "string", "enum": ["a"]}, None),
    ({"type": "string", "minLength": 1}, ""),
    ({"type": "string", "maxLength": 2}, "abc"),
    ({"type": "number", "minimum": 0, "exclusiveMinimum": True}, 0),
    ({"type": "number", "maximum": 100}, 100.000001),
    ({"type": "string", "format": "date-time"}, "2026-13-01T00:00:00Z"),
    ({"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}}, {}),
    ({"type": "object", "additionalProperties": False, "properties": {}}, {"b": 1}),
    ({"type": "object", "minProperties": 1}, {}),
    ({"type": "array", "maxItems": 2, "items": {"type": "string"}}, ["a", "b", "c"]),
    ({"type": "array", "items": {"type": "string"}}, ["a", 1]),
])
def test_refused_values(schema, value):
    assert not full_accepts(schema, value)
    assert compile_check(schema)(value) is False


@pytest.mark.parametrize(("schema", "value"), [
    ({"type": "string", "nullable": True, "pattern": UUID}, None),
    ({"type": "string", "nullable": True, "enum": ["a"]}, None),
    ({"type": "number", "minimum": 0}, 0),
    ({"minimum": 0}, "not a number, and no type keyword: minimum does not apply"),
    ({"type": "string", "format": "date-time"}, "2026-11-30T22:00:00Z"),
    ({"type": "string", "format": "uuid"}, "not checked: the checker knows no such format"),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "example": {"a": 1}}, {"b": 2}),
])
def test_accepted_values(schema, value):
    assert full_accepts(schema, value)
    assert compile_check(schema)(value) is True


@pytest.mark.parametrize("schema", [
    {"type": ["string", "null"]},
    {"enum": [1, True]},
    {"multipleOf": 2},
    {"oneOf": [{"type": "string"}]},
    {"type": "object", "additionalProperties": {"type": "string"}},
    {"type": "array", "items": [{"type": "string"}]},
    {"properties": {"a": {"uniqueItems": True}}},
])
def test_other_keywords_get_the_full_validator(schema):
    assert compile_check(schema) is None


def test_a_refused_value_is_still_worded_by_jsonschema():
    schema = {"type": "object", "required": ["score"], "properties": {"score": {"type": "number"}}}
    assert first_error(schema, {"score": 1}) is None
    error = first_error(schema, {"score": "1"})
    assert error is not None and error.validator == "type" and list(error.absolute_path) == ["score"]
