"""OpenAPI schemas of plain Python samples (inference-schema's rules: int -> integer/int64, float ->
number/double, lists by their first item's type, dicts as objects whose keys are all required)."""

import base64
import datetime as dt

from ._constants import DATE_FORMAT, DATETIME_FORMAT, TIME_FORMAT
from .abstract_parameter_type import AbstractParameterType


def _schema_of(value):
    if isinstance(value, AbstractParameterType):
        return value.input_to_swagger()
    return handle_standard_types(value)


def handle_standard_types(sample):
    t = type(sample)
    if t is int:
        return {"type": "integer", "format": "int64", "example": sample}
    if t is float:
        return {"type": "number", "format": "double", "example": sample}
    if t is bool:
        return {"type": "boolean", "example": sample}
    if t is str:
        return {"type": "string", "example": sample}
    if t in (bytes, bytearray):
        return {"type": "string", "format": "byte", "example": base64.b64encode(sample).decode("utf-8")}
    if t is dt.date:
        return {"type": "string", "format": "date", "example": sample.strftime(DATE_FORMAT)}
    if t is dt.datetime:
        aware = sample if sample.tzinfo is not None else sample.replace(tzinfo=dt.timezone.utc)
        return {"type": "string", "format": "date-time", "example": aware.strftime(DATETIME_FORMAT)}
    if t is dt.time:
        aware = sample if sample.tzinfo is not None else sample.replace(tzinfo=dt.timezone.utc)
        return {"type": "string", "format": "time", "example": aware.strftime(TIME_FORMAT)}
    if t in (list, tuple, range):
        return get_swagger_for_list(sample)
    if t is dict:
        return get_swagger_for_nested_dict(sample)
    return {"type": "object", "example": sample}


def get_swagger_for_list(items):
    items = list(items)
    item_schema = {"type": "object"}
    example = []
    if items:
        first = type(items[0])
        for value in items:
            if type(value) is not first:
                raise TypeError("Error, OpenAPI 2.x does not support mixed type in array.")
            item_schema = _schema_of(value)
            example.append(item_schema.pop("example", None))
    return {"type": "array", "items": item_schema, "example": example}


def get_swagger_for_nested_dict(mapping):
    properties = {}
    example = {}
    for key, value in mapping.items():
        schema = _schema_of(value)
        example[key] = schema.pop("example", None)
        properties[key] = schema
    return {"type": "object", "required": list(mapping), "properties": properties, "example": example}
