"""The wire shapes of openapi.yaml, checked strictly: every documented field present,
no undocumented one, JSON types, nullability and enums as the spec states them."""
import functools
import re

import yaml

from certapi.spec import SPEC_PATH

SPEC_FILE = SPEC_PATH

# JSON type → the Python types json.loads produces for it (bool is not a number).
_TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


@functools.cache
def spec() -> dict:
    with SPEC_FILE.open() as fh:
        return yaml.safe_load(fh)


# The timestamp rule as the spec's Timestamp schema states it.
RFC3339_Z = re.compile(spec()["components"]["schemas"]["Timestamp"]["pattern"])


def _resolve(schema: dict) -> dict:
    while "$ref" in schema:
        node = spec()
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def problems(value, schema: str | dict, where: str = "") -> list[str]:
    """Every way ``value`` departs from the schema (a components/schemas name or a schema)."""
    if isinstance(schema, str):
        schema = spec()["components"]["schemas"][schema]
    schema = _resolve(schema)
    label = where or "body"
    if "oneOf" in schema:  # e.g. an enrollment or null (OpenAPI 3.0 has no nullable $ref)
        found = [problems(value, option, where) for option in schema["oneOf"]]
        if all(found):
            return [f"{label} fits none of its alternatives: {found[0][0]}"]
        return []
    if value is None:
        return [] if schema.get("nullable") else [f"{label} is null"]
    kind = schema.get("type", "object" if "properties" in schema else None)
    if kind and (not isinstance(value, _TYPES[kind])
                 or (isinstance(value, bool) and kind != "boolean")):
        return [f"{label} is {type(value).__name__} {value!r:.40}, expected {kind}"]
    found = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{label} is {value!r}, not one of {schema['enum']}")
    if kind in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{label} is {value}, below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{label} is {value}, above {schema['maximum']}")
    # Every timestamp (the *_at fields) is RFC 3339 in UTC with a Z suffix.
    if kind == "string" and where.endswith("_at") and not RFC3339_Z.match(value):
        found.append(f"{label} is {value!r}, not an RFC 3339 UTC timestamp ending in Z")
    if kind == "object":
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                found.append(f"{_join(where, name)} is missing")
        if schema.get("additionalProperties") is False:
            found += [f"{_join(where, name)} is not in the contract"
                      for name in value if name not in properties]
        for name, sub in properties.items():
            if name in value:
                found += problems(value[name], sub, _join(where, name))
    if kind == "array" and "items" in schema:
        for index, item in enumerate(value):
            found += problems(item, schema["items"], f"{label}[{index}]")
    return found


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def path_methods() -> dict[str, set[str]]:
    """Every documented path (with the /v1-relative template) → its HTTP methods."""
    verbs = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
    return {path: {m.upper() for m in item if m in verbs} for path, item in spec()["paths"].items()}
