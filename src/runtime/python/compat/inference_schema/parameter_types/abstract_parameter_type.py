"""The base class of parameter types: a sample value that gives the schema, and a way back from JSON."""

import base64
import datetime as dt
from abc import ABC, abstractmethod

from .._constants import ALL_SUPPORTED_VERSIONS


class AbstractParameterType(ABC):
    """Subclass it and implement deserialize_input (JSON value -> object) and input_to_swagger (schema)."""

    def __init__(self, sample_input):
        self.sample_input = sample_input
        self.sample_data_type = type(sample_input)

    @abstractmethod
    def deserialize_input(self, input_data):
        """Converts a JSON value (already parsed) into what run() expects."""

    @abstractmethod
    def input_to_swagger(self):
        """The OpenAPI schema of the sample, with an "example"."""

    def supported_versions(self):
        return list(ALL_SUPPORTED_VERSIONS)

    @classmethod
    def _get_swagger_sample(cls, records, count, item_schema):
        """The example for an array schema: the first `count` records, each shaped by the item schema."""
        return [cls._sample_of(item_schema, records[i]) for i in range(count)]

    @classmethod
    def _sample_of(cls, schema, item):
        """One value of a numpy record as plain JSON, following its schema (structured dtypes -> objects)."""
        kind = schema.get("type")
        if kind == "object":
            if "properties" in schema:
                return {f: cls._sample_of(s, item[f]) for f, s in schema["properties"].items()}
            return str(item)
        if kind == "array":
            return [cls._sample_of(schema["items"], x) for x in item]
        if kind == "number":
            return float(item)
        if kind == "integer":
            return int(item)
        if kind == "boolean":
            return bool(item)
        fmt = schema.get("format")
        if fmt == "date":
            return item.astype(dt.datetime).strftime("%Y-%m-%d")
        if fmt == "date-time":
            return item.astype(dt.datetime).strftime("%Y-%m-%d %H:%M:%S,%f")
        if fmt == "binary":
            return base64.b64encode(item).decode("utf-8")
        return str(item)
