"""openapi.yaml, the source of truth: valid OpenAPI 3.0, routed into handlers named after
the operations, strict about request bodies, documenting the errors every operation can
produce, and served as written next to Swagger UI."""
import copy
import importlib
import inspect
import re
from types import SimpleNamespace

import pytest
import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from openapi_spec_validator import OpenAPIV30SpecValidator, validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from certapi.app import SPEC_PATH
from certapi.errors import ApiError
from certapi.routing import HandlerResolver, function_name, handler_path
from tests.conftest import METHODS, SPEC

OPERATIONS = [(path, method, op) for path, item in SPEC["paths"].items()
              for method, op in item.items() if method in METHODS]
IDS = [op["operationId"] for _, _, op in OPERATIONS]
WRITE_METHODS = {"post", "patch", "put", "delete"}
CSV_LISTS = {"listUsers", "listUserEnrollments", "listEnrollments"}


def ref(node: dict) -> dict:
    """Follow a local $ref (the spec only uses #/components/...)."""
    while "$ref" in node:
        _, *parts = node["$ref"].split("/")
        node = SPEC
        for part in parts:
            node = node[part]
    return node


def test_openapi_spec_validator_accepts_it():
    assert SPEC["openapi"].startswith("3.0.")
    validate(SPEC, cls=OpenAPIV30SpecValidator)


def test_the_validator_is_not_a_rubber_stamp():
    broken = copy.deepcopy(SPEC)
    del broken["paths"]["/partners"]["get"]["responses"]["200"]["description"]
    with pytest.raises(OpenAPIValidationError):
        validate(broken, cls=OpenAPIV30SpecValidator)


def test_operation_ids_are_unique():
    ids = [op["operationId"] for _, _, op in OPERATIONS]
    assert len(ids) == len(set(ids))


def handler_of(op: dict):
    """The function Connexion routes the operation to (certapi.routing)."""
    module_name, _, name = handler_path(op["x-openapi-router-controller"], op["operationId"]).rpartition(".")
    return getattr(importlib.import_module(module_name), name, None), module_name, name


@pytest.mark.parametrize("path, method, op", OPERATIONS, ids=IDS)
def test_operation_id_is_clean_camel_case(path, method, op):
    """Generated clients and Swagger UI anchors are named after the operationId."""
    assert re.fullmatch(r"[a-z]+(?:[A-Z][a-z]+)*", op["operationId"]), op["operationId"]


@pytest.mark.parametrize("path, method, op", OPERATIONS, ids=IDS)
def test_operation_id_routes_to_a_handler_function_named_like_it(path, method, op):
    function, module_name, name = handler_of(op)
    assert module_name.startswith("handlers."), op["x-openapi-router-controller"]
    assert inspect.isfunction(function), (op["operationId"], f"{module_name}.{name}")
    assert (function.__module__, function.__name__) == (module_name, name)


def test_operation_ids_map_to_snake_case_function_names():
    assert function_name("updateEnrollmentProgress") == "update_enrollment_progress"
    assert function_name("getHealth") == "get_health"


def test_an_operation_without_a_router_controller_fails_at_start_up():
    operation = SimpleNamespace(operation_id="getHealth", router_controller=None)
    with pytest.raises(ValueError, match="getHealth"):
        HandlerResolver().resolve_operation_id(operation)


@pytest.mark.parametrize("path, method, op", OPERATIONS, ids=IDS)
def test_handler_accepts_every_documented_input(path, method, op):
    """Connexion passes only the arguments a handler names; one it lacks is dropped silently."""
    function, _, name = handler_of(op)
    signature = inspect.signature(function)
    params = [ref(p) for p in [*SPEC["paths"][path].get("parameters", []), *op.get("parameters", [])]]
    expected = {p["name"] for p in params if p["in"] in ("path", "query")}
    if "requestBody" in op:
        expected.add("body")
    if op.get("security", SPEC.get("security")):
        expected.add("user")  # the caller's account: Connexion passes the security function's `sub`
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    assert accepts_any or expected <= set(signature.parameters), (expected, signature)
    required = {n for n, p in signature.parameters.items()
                if p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    assert required <= expected, f"{name} requires {required - expected}, which the spec never sends"


@pytest.mark.parametrize("path, method, op", [o for o in OPERATIONS if "requestBody" in o[2]],
                         ids=[i for i, o in zip(IDS, OPERATIONS) if "requestBody" in o[2]])
def test_request_bodies_are_closed_json_objects(path, method, op):
    content = op["requestBody"]["content"]
    assert set(content) == {"application/json"}
    assert op["requestBody"].get("required") is True
    schema = ref(content["application/json"]["schema"])
    assert schema["type"] == "object"
    assert schema.get("additionalProperties") is False, op["operationId"]
    assert schema.get("properties"), op["operationId"]


# The orchestrator's probes: no key, and a 503 with a body of their own.
PROBES = ("getHealth", "getReadiness")


@pytest.mark.parametrize("path, method, op", OPERATIONS, ids=IDS)
def test_every_operation_documents_its_error_statuses(path, method, op):
    statuses = set(op["responses"])
    assert "422" in statuses
    secured = op.get("security", SPEC["security"]) != []
    assert secured == (op["operationId"] not in PROBES)
    if secured:
        assert "401" in statuses
    if method in WRITE_METHODS:
        assert "403" in statuses
    if "requestBody" in op:
        assert {"413", "415"} <= statuses
    if "{" in path:
        assert "404" in statuses


@pytest.mark.parametrize("path, method, op", OPERATIONS, ids=IDS)
def test_every_response_is_described_and_errors_are_the_envelope(path, method, op):
    for status, response in op["responses"].items():
        response = ref(response)
        assert response.get("description"), (op["operationId"], status)
        if status == "204":
            assert "content" not in response
            continue
        # The lists also answer CSV (text/csv) on request; everything else is JSON only.
        allowed = {"application/json", "text/csv"} if status == "200" and op["operationId"] in CSV_LISTS \
            else {"application/json"}
        assert "application/json" in response["content"], (op["operationId"], status)
        assert set(response["content"]) <= allowed, (op["operationId"], status)
        schema = response["content"]["application/json"]["schema"]
        if int(status) >= 400 and op["operationId"] not in PROBES or status == "422":
            assert schema == {"$ref": "#/components/schemas/Error"}, (op["operationId"], status)


def test_error_codes_in_the_spec_are_the_ones_raised():
    documented = SPEC["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    raised = {cls.code for cls in ApiError.__subclasses__()} | {ApiError.code}
    assert set(documented) == raised


def test_swagger_ui_is_served(client):
    response = client.get("/v1/ui/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text and "openapi.json" in response.text
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js"):
        assert client.get(f"/v1/ui/{asset}").status_code == 200, asset


def test_openapi_json_is_the_file_as_written(client, tenant):
    # After a request with a $ref'd body too: Connexion once broke the served spec then.
    client.post("/v1/partners", json={"name": "Before the spec"}, headers=tenant.headers)
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with SPEC_PATH.open() as fh:
        assert response.json() == yaml.safe_load(fh)


# --- plain YAML, typed fields and examples, for tools other than Connexion ----------------

def yaml_shortcuts(text: str) -> list[str]:
    """Merge keys (``<<: *alias``) and aliases in a YAML text. Prism silently stops
    validating a body schema built with a merge key; other tools misread aliases."""
    found = []

    def walk(node):
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.tag == "tag:yaml.org,2002:merge" or key.value == "<<":
                    found.append(f"merge key at line {key.start_mark.line + 1}")
                walk(key)
                walk(value)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item)

    for event in yaml.parse(text):
        if isinstance(event, yaml.AliasEvent):
            found.append(f"alias *{event.anchor} at line {event.start_mark.line + 1}")
    walk(yaml.compose(text))
    return found


def test_spec_is_plain_yaml_without_merge_keys_or_aliases():
    assert yaml_shortcuts(SPEC_PATH.read_text()) == []


def test_a_merge_key_would_be_found():
    text = "a: &base {type: string}\nb: {<<: *base, nullable: true}\n"
    assert yaml_shortcuts(text) == ["alias *base at line 2", "merge key at line 2"]


def test_nullable_variants_are_their_base_schema_plus_null():
    schemas = SPEC["components"]["schemas"]
    variants = {name: name.removeprefix("Nullable") for name in schemas
                if name.startswith("Nullable") and name.removeprefix("Nullable") in schemas}
    assert set(variants) == {"NullableUuid", "NullableEmail", "NullableName"}
    for variant, base in variants.items():
        strip = {"nullable", "example", "description"}
        assert {k: v for k, v in schemas[variant].items() if k not in strip} == \
               {k: v for k, v in schemas[base].items() if k not in strip}, variant
        assert schemas[variant]["nullable"] is True


def _schema_validator(schema: dict) -> OAS30Validator:
    # The components ride along so that $refs resolve against this document.
    return OAS30Validator({**schema, "components": SPEC["components"]},
                          format_checker=oas30_format_checker)


def _query_parameter_schemas() -> set[str]:
    params = [ref(p) for item in SPEC["paths"].values()
              for op in [item, *(item[m] for m in item if m in METHODS)] for p in op.get("parameters", [])]
    return {p["schema"]["$ref"].rsplit("/", 1)[1] for p in params
            if p["in"] == "query" and "$ref" in p["schema"]}


QUERY_SCHEMAS = _query_parameter_schemas()


def test_schemas_of_query_filters_carry_no_example():
    """Swagger UI fills a schema's example into "Try it out": an optional filter would
    arrive pre-set (status=published) and a newcomer's first list would look empty."""
    assert QUERY_SCHEMAS >= {"Uuid", "Email", "CertificationStatus", "EnrollmentStatus"}
    assert [name for name in QUERY_SCHEMAS if "example" in SPEC["components"]["schemas"][name]] == []


@pytest.mark.parametrize("name", sorted(set(SPEC["components"]["schemas"]) - QUERY_SCHEMAS))
def test_every_schema_has_an_example_that_fits_it(name):
    schema = SPEC["components"]["schemas"][name]
    assert "example" in schema, f"{name} has no example"
    errors = [e.message for e in _schema_validator(schema).iter_errors(schema["example"])]
    assert errors == [], (name, errors)


def test_an_example_that_breaks_its_schema_is_caught():
    schema = SPEC["components"]["schemas"]["Enrollment"]
    broken = {**schema["example"], "enrolled_at": "2026-11-04 12:00:00", "uuid": "nope"}
    errors = list(_schema_validator(schema).iter_errors(broken))
    assert {error.path[0] for error in errors} == {"uuid", "enrolled_at"}
    assert {error.validator for error in errors} == {"format", "pattern"}


def _response_properties():
    """(schema name, property, resolved property schema) for every object a response carries."""
    seen, found, todo = set(), [], []
    for item in SPEC["paths"].values():
        for method, op in item.items():
            if method in METHODS:
                for response in op["responses"].values():
                    for media in ref(response).get("content", {}).values():
                        todo.append(media["schema"])
    while todo:
        node = todo.pop()
        name = node.get("$ref", "").rsplit("/", 1)[-1]
        if name in seen:
            continue
        seen.add(name)
        node = ref(node)
        for prop, sub in node.get("properties", {}).items():
            found.append((name, prop, ref(sub)))
            todo.append(sub)
        if "items" in node:
            todo.append(node["items"])
    return found


def test_response_uuids_and_timestamps_are_typed_for_generated_clients():
    timestamp = SPEC["components"]["schemas"]["Timestamp"]
    checked = 0
    for name, prop, schema in _response_properties():
        if prop == "uuid" or prop.endswith("_uuid"):
            assert schema.get("format") == "uuid", (name, prop)
            checked += 1
        if prop.endswith("_at"):
            assert schema.get("format") == "date-time", (name, prop)
            assert schema.get("pattern") == timestamp["pattern"], (name, prop)
            checked += 1
    assert checked >= 20


def test_the_timestamp_rule_is_one_pattern_the_contract_suite_reads():
    from certapi.contract import schemas
    assert schemas.RFC3339_Z.pattern == SPEC["components"]["schemas"]["Timestamp"]["pattern"]
    assert schemas.RFC3339_Z.match("2026-11-26T14:15:29.123456Z")
    assert not schemas.RFC3339_Z.match("2026-11-26T14:15:29+00:00")


def test_tags_are_described_and_the_spec_has_a_license():
    assert all(tag.get("description") for tag in SPEC["tags"])
    assert {tag["name"] for tag in SPEC["tags"]} == {t for _, _, op in OPERATIONS for t in op["tags"]}
    assert SPEC["info"]["license"]["name"] and SPEC["info"]["license"]["url"].startswith("https://")
