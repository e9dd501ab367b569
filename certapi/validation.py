"""Request validators plugged into Connexion through its ``validator_map``.

They keep Connexion's validation but (1) name the place of every error the way the
contract wants (``body/user_uuid: Required``), (2) turn bodies that are not UTF-8 or
not JSON into 422s instead of 500s, and (3) build each JSON-schema validator once per
schema instead of once per request.
"""
import json
import typing as t

from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem
from connexion.json_schema import Draft4RequestValidator
from connexion.lifecycle import ConnexionRequest
from connexion.validators import JSONRequestBodyValidator, ParameterValidator
from connexion.validators.parameter import draft4_format_checker
from jsonschema import ValidationError

from certapi.errors import ValidationFailed

_validators: dict[int, tuple[dict, Draft4RequestValidator]] = {}


def schema_validator(schema: dict) -> Draft4RequestValidator:
    """One compiled validator per schema object; the spec's schemas live as long as the app."""
    hit = _validators.get(id(schema))
    if hit is None or hit[0] is not schema:
        hit = (schema, Draft4RequestValidator(schema, format_checker=draft4_format_checker))
        _validators[id(schema)] = hit
    return hit[1]


def _short(value: t.Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(error: ValidationError) -> tuple[list, str]:
    """(extra path parts, human message) for one jsonschema error."""
    kind, arg, schema = error.validator, error.validator_value, error.schema
    if kind == "required":
        missing = next((name for name in arg if name not in error.instance), arg[0])
        return [missing], "Required"
    if kind == "additionalProperties":
        known = set(schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in known)
        return extra[:1], "Unknown field"
    if kind == "type":
        wanted = arg if isinstance(arg, str) else " or ".join(arg)
        return [], f"Expected {wanted}"
    if kind == "enum":
        return [], "Must be one of: " + ", ".join(str(v) for v in arg)
    if kind == "pattern":
        return [], "Does not match the expected format"
    if kind == "minimum":
        return [], f"Must be at least {arg:g}"
    if kind == "maximum":
        return [], f"Must be at most {arg:g}"
    if kind == "minLength":
        return [], "Must not be empty" if arg == 1 else f"Must be at least {arg} characters"
    if kind == "maxLength":
        return [], f"Must be at most {arg} characters"
    if kind == "minProperties":
        return [], "At least one field is required"
    return [], f"{_short(error.instance)} is not valid ({kind})"


def place(prefix: str, path: t.Iterable) -> str:
    return "/".join([prefix, *(str(p) for p in path)])


def raise_for(prefix: str, error: ValidationError) -> t.NoReturn:
    extra, message = describe(error)
    raise ValidationFailed(f"{place(prefix, [*error.absolute_path, *extra])}: {message}")


class BodyValidator(JSONRequestBodyValidator):
    @property
    def _validator(self):
        return schema_validator(self._schema)

    async def _parse(self, stream, scope):
        raw = b"".join([message async for message in stream])
        if not raw:
            return None
        try:
            return json.loads(raw.decode(self._encoding))
        except (UnicodeDecodeError, LookupError):
            raise ValidationFailed(f"body: Not valid {self._encoding} text")
        except (json.JSONDecodeError, RecursionError) as exc:
            detail = getattr(exc, "msg", "nested too deeply")
            raise ValidationFailed(f"body: Invalid JSON ({detail})")

    def _validate(self, body):
        if body is None:
            raise ValidationFailed("body: Required")
        error = next(iter(self._validator.iter_errors(body)), None)
        if error is not None:
            raise_for("body", error)
        return body

    async def wrap_receive(self, receive, *, scope):
        try:
            return await super().wrap_receive(receive, scope=scope)
        except BadRequestProblem:
            # Raised by Connexion for an absent body on an operation that requires one.
            raise ValidationFailed("body: Required")


class ParamValidator(ParameterValidator):
    def validate(self, scope):
        self.validate_request(ConnexionRequest(scope, uri_parser=self.uri_parser))

    def validate_request(self, request):
        if self.strict_validation:
            unknown = self.validate_query_parameter_list(request, self.security_query_params)
            if unknown:
                raise ValidationFailed(f"query/{sorted(unknown)[0]}: Unknown parameter")
        sources = {
            "query": request.query_params,
            "path": request.path_params,
            "header": request.headers,
        }
        for location, params in self.parameters.items():
            values = sources.get(location)
            if values is None:
                continue
            for param in params:
                name = param["name"]
                value = values.get(name if location != "path" else name.replace("-", "_"))
                if value is None:
                    if param.get("required"):
                        raise ValidationFailed(f"{location}/{name}: Required")
                    continue
                error = next(iter(schema_validator(param["schema"]).iter_errors(value)), None)
                if error is not None:
                    raise_for(f"{location}/{name}", error)


VALIDATOR_MAP = {
    "parameter": ParamValidator,
    "body": MediaTypeDict({"*/*json": BodyValidator}),
}
