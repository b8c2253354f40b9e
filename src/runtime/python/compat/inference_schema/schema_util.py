"""Reading back what @input_schema / @output_schema recorded (the functions azmlinfsrv calls, section 5.7).

The record is kept per undecorated function (found with inspect.unwrap through the functools.wraps chain),
so every layer of a stack of decorators sees the same schemas.
"""

import copy
import inspect

from ._constants import ALL_SUPPORTED_VERSIONS, INPUT_SCHEMA_ATTR, OUTPUT_SCHEMA_ATTR

# {undecorated function: {"input_schema": {...}, "output_schema": {...}, "versions": {attr: [...]}}}
_records = {}


def _base(func):
    return inspect.unwrap(func)


def _record(func, create=False):
    base = _base(func)
    rec = _records.get(base)
    if rec is None and create:
        rec = _records[base] = {"versions": {}}
    return rec


def get_input_schema(func):
    """The OpenAPI schema of run()'s keyword arguments: {"type": "object", "properties", "example"}."""
    rec = _record(func) or {}
    return copy.deepcopy(rec.get(INPUT_SCHEMA_ATTR, {"type": "object"}))


def get_output_schema(func):
    rec = _record(func) or {}
    return copy.deepcopy(rec.get(OUTPUT_SCHEMA_ATTR, {"type": "object"}))


def get_supported_versions(func):
    """Swagger versions every declared parameter type can be described in (all of them by default)."""
    rec = _record(func) or {"versions": {}}
    sets = [set(v) for v in rec["versions"].values() if v]
    versions = set.intersection(*sets) if sets else set(ALL_SUPPORTED_VERSIONS)
    return sorted(versions)


def is_schema_decorated(func):
    return _record(func) is not None


def get_schemas_dict():
    """{"<module>.<name>": {"input_schema": ..., "output_schema": ...}} for every decorated function."""
    out = {}
    for base, rec in _records.items():
        name = "%s.%s" % (getattr(base, "__module__", "<unknown>"), getattr(base, "__name__", "?"))
        out[name] = copy.deepcopy({k: v for k, v in rec.items() if k != "versions"})
    return out
