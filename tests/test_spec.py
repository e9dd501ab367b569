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


@pytest.mark.parametrize("path, method, op", OPERATIONS, ids=IDS)
def test_every_operation_documents_its_error_statuses(path, method, op):
    statuses = set(op["responses"])
    assert "422" in statuses
    secured = op.get("security", SPEC["security"]) != []
    assert secured == (op["operationId"] != "getHealth")
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
        assert set(response["content"]) == {"application/json"}, (op["operationId"], status)
        schema = response["content"]["application/json"]["schema"]
        if int(status) >= 400 and op["operationId"] != "getHealth" or status == "422":
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
