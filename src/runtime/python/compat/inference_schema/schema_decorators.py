"""@input_schema and @output_schema, as inference-schema defines them.

    @input_schema("data", NumpyParameterType(np.array([[1.0, 2.0]])))
    @output_schema(StandardPythonParameterType([0.5]))
    def run(data): ...

The server calls run(**json_body); the @input_schema wrapper converts its parameter to the declared type
(a list to a numpy array, records to a DataFrame, ...) before the user's run() sees it. Both decorators
record an OpenAPI schema that /swagger.json publishes as ServiceInput / ServiceOutput.

One deliberate difference from the real package: a value that cannot be converted raises SchemaInputError
(a ValueError), which infergate answers with 400 and the reason, where azmlinfsrv answers 500.
"""

import copy
import functools
import inspect

from ._constants import INPUT_SCHEMA_ATTR, OUTPUT_SCHEMA_ATTR
from .parameter_types.abstract_parameter_type import AbstractParameterType
from .schema_util import _base, _record


class SchemaInputError(ValueError):
    """A request value does not fit the declared parameter type: the client's fault (400)."""

    _infergate_bad_input = True

    def __init__(self, param_name, reason):
        super().__init__("Invalid value for the '%s' parameter: %s" % (param_name, reason))
        self.param_name = param_name


def _param_names(func):
    try:
        return list(inspect.signature(_base(func)).parameters)
    except (TypeError, ValueError):
        return []


def _check_type(param_type):
    if not isinstance(param_type, AbstractParameterType):
        raise TypeError("Error, provided param_type must be a subclass of the AbstractParameterType.")


def input_schema(param_name, param_type, convert_to_provided_type=True, optional=False):
    """Declares run()'s parameter `param_name` as `param_type` (schema, example, conversion)."""
    _check_type(param_type)
    item = param_type.input_to_swagger()
    versions = param_type.supported_versions()

    def decorate(func):
        names = _param_names(func)
        rec = _record(func, create=True)
        schema = rec.get(INPUT_SCHEMA_ATTR)
        if schema is None:
            # Every parameter is listed, the undeclared ones with an empty schema (as inference-schema does).
            schema = rec[INPUT_SCHEMA_ATTR] = {
                "type": "object",
                "properties": {n: {} for n in names},
                "example": {n: "" for n in names},
            }
        described = copy.deepcopy(item)
        schema["example"][param_name] = described.pop("example", None)
        schema["properties"][param_name] = described
        rec["versions"].setdefault(INPUT_SCHEMA_ATTR + ":" + param_name, versions)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if convert_to_provided_type:
                if param_name in kwargs:
                    value = kwargs[param_name]
                    if not (optional and not value):
                        kwargs[param_name] = _convert(value, param_type, param_name)
                elif not optional and param_name in names:
                    position = names.index(param_name)
                    if position < len(args):
                        args = list(args)
                        args[position] = _convert(args[position], param_type, param_name)
            return func(*args, **kwargs)

        return wrapper

    return decorate


def output_schema(output_type):
    """Declares what run() returns (published as ServiceOutput); the value itself is not changed."""
    _check_type(output_type)
    item = output_type.input_to_swagger()
    versions = output_type.supported_versions()

    def decorate(func):
        rec = _record(func, create=True)
        if OUTPUT_SCHEMA_ATTR in rec:
            raise ValueError("Error, output schema already defined for function: %s." % _base(func).__name__)
        rec[OUTPUT_SCHEMA_ATTR] = copy.deepcopy(item)
        rec["versions"][OUTPUT_SCHEMA_ATTR] = versions

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            return func(*args, **kwargs)

        return wrapper

    return decorate


def _convert(value, param_type, param_name):
    try:
        return _deserialize(value, param_type)
    except SchemaInputError:
        raise
    except Exception as exc:  # ValueError, TypeError, numpy / pandas errors: all mean "does not fit"
        raise SchemaInputError(param_name, str(exc) or type(exc).__name__) from exc


def _deserialize(value, param_type):
    """Converts one value; dicts and lists of declared parameter types are converted item by item."""
    sample_type = param_type.sample_data_type
    if sample_type is dict:
        if not isinstance(value, dict):
            raise ValueError("expected a JSON object, got %s" % _json_type(value))
        for key, inner in getattr(param_type, "sample_data_type_map", {}).items():
            if key in value:
                value[key] = _deserialize(value[key], inner)
        return value
    if sample_type in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError("expected a JSON array, got %s" % _json_type(value))
        inner = getattr(param_type, "sample_data_type_list", [])
        if inner:
            return [_deserialize(v, inner[0]) for v in value]
        return value
    if isinstance(value, sample_type) and not (sample_type is int and isinstance(value, bool)):
        return value
    return param_type.deserialize_input(value)


def _json_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
