"""A fast yes for request values the spec's schemas accept.

jsonschema walks a schema through generic machinery (an error generator per keyword,
a scope per descent): 15 µs for a one-field body, 20-30 ms for a bulk body of 1000
items, which was a third of certapi's bulk enrollment beside a Pydantic-validated
reference (bench/PROFILE.md). ``compile_check`` turns a schema into nested closures
that answer one question, "does the full validator accept this?", exactly, for the
keywords the spec's request schemas use. A value they accept skips jsonschema; any
other value goes to jsonschema, which finds and words the error, so every 422 is
worded as before. A schema holding any other validation keyword gets no closure and
is always validated in full.

The semantics are the request validator's (certapi.validation.RequestValidator):
JSON Schema Draft 4 (an integer is an ``int``, never ``1.0``; booleans are neither
numbers nor integers), OpenAPI's ``nullable`` on ``type`` and ``enum`` (as Connexion
adds it), ECMA-262 ``pattern`` (the same compiled regress expressions), ``format``
through the same format checker. tests/test_schema_check.py compares the two on every
request schema of the spec."""
import typing as t
from collections.abc import Callable, Iterable

from jsonschema import FormatChecker

Check = Callable[[t.Any], bool]

_TYPES: dict[str, Callable[[t.Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}
# The validation keywords the closures implement; a schema with another one of the
# validator's keywords (allOf, oneOf, multipleOf, uniqueItems, ...) is not compiled.
SUPPORTED = frozenset({
    "type", "enum", "format", "pattern", "minLength", "maxLength", "minimum", "maximum",
    "properties", "required", "additionalProperties", "minProperties", "maxProperties",
    "items", "minItems", "maxItems",
})

# What each size keyword counts, and its lower and upper bound's names.
_SIZES = ((str, "minLength", "maxLength"), (list, "minItems", "maxItems"),
          (dict, "minProperties", "maxProperties"))


def compile_check(schema: t.Any, keywords: Iterable[str], matches: Callable[[str, str], bool],
                  formats: FormatChecker) -> Check | None:
    """A function true exactly for the instances the full validator accepts, or None.
    ``keywords``: the validator's keywords (anything else in a schema is an annotation
    it ignores); ``matches(pattern, text)``: its ``pattern`` test."""
    known = frozenset(keywords)
    try:
        return _compile(schema, known, matches, formats)
    except _Unsupported:
        return None


class _Unsupported(Exception):
    pass


def _compile(schema: t.Any, known: frozenset, matches: Callable[[str, str], bool],
             formats: FormatChecker) -> Check:
    if not isinstance(schema, dict) or (set(schema) & known) - SUPPORTED:
        raise _Unsupported
    checks: list[Check] = []
    nullable = schema.get("nullable") is True or schema.get("x-nullable") is True

    if "type" in schema:
        if not isinstance(schema["type"], str) or schema["type"] not in _TYPES:
            raise _Unsupported
        is_type = _TYPES[schema["type"]]
        checks.append((lambda v: v is None or is_type(v)) if nullable else is_type)
    if "enum" in schema:
        # Only string enums: jsonschema's equality tells 1 from True and 1.0, set
        # membership does not.
        if not isinstance(schema["enum"], list) or not all(isinstance(e, str) for e in schema["enum"]):
            raise _Unsupported
        allowed = frozenset(schema["enum"])
        checks.append(lambda v: (nullable and v is None) or (isinstance(v, str) and v in allowed))
    if "format" in schema:
        name = schema["format"]
        checks.append(lambda v: formats.conforms(v, name))
    if "pattern" in schema:
        pattern = schema["pattern"]
        checks.append(lambda v: not isinstance(v, str) or matches(pattern, v))
    for kind, least, most in _SIZES:
        if least in schema:
            checks.append(_sized(kind, schema[least], lambda n, bound: n >= bound))
        if most in schema:
            checks.append(_sized(kind, schema[most], lambda n, bound: n <= bound))
    if "minimum" in schema:
        low, strict = schema["minimum"], schema.get("exclusiveMinimum", False)
        checks.append(_numeric(lambda v: not (v <= low if strict else v < low)))
    if "maximum" in schema:
        high, strict = schema["maximum"], schema.get("exclusiveMaximum", False)
        checks.append(_numeric(lambda v: not (v >= high if strict else v > high)))
    if "items" in schema:
        if not isinstance(schema["items"], dict):  # Draft 4's tuple form
            raise _Unsupported
        item = _compile(schema["items"], known, matches, formats)
        checks.append(lambda v: not isinstance(v, list) or all(item(i) for i in v))
    if {"properties", "required", "additionalProperties"} & set(schema):
        checks.append(_object(schema, known, matches, formats))

    def check(value: t.Any) -> bool:
        return all(one(value) for one in checks)
    return check


def _sized(kind: type, bound: int, fits: Callable[[int, int], bool]) -> Check:
    return lambda v: not isinstance(v, kind) or fits(len(t.cast(t.Sized, v)), bound)


def _numeric(fits: Check) -> Check:
    return lambda v: isinstance(v, bool) or not isinstance(v, int | float) or fits(v)


def _object(schema: dict, known: frozenset, matches: Callable[[str, str], bool],
            formats: FormatChecker) -> Check:
    properties = {name: _compile(sub, known, matches, formats)
                  for name, sub in schema.get("properties", {}).items()}
    required = list(schema.get("required", ()))
    extra = schema.get("additionalProperties", True)
    if extra is not False and extra is not True:  # a schema for the other properties
        raise _Unsupported
    closed = extra is False

    def check(value: t.Any) -> bool:
        if not isinstance(value, dict):
            return True
        for name in required:
            if name not in value:
                return False
        for name, item in value.items():
            sub = properties.get(name)
            if sub is None:
                if closed:
                    return False
            elif not sub(item):
                return False
        return True
    return check
