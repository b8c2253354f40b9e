"""OpenAPI types for numpy dtypes (scalars, sub-arrays, structured records)."""

_SIMPLE = {
    "int8": {"type": "integer", "format": "int8"},
    "int16": {"type": "integer", "format": "int16"},
    "int32": {"type": "integer", "format": "int32"},
    "int64": {"type": "integer", "format": "int64"},
    "uint8": {"type": "integer", "format": "uint8"},
    "uint16": {"type": "integer", "format": "uint16"},
    "uint32": {"type": "integer", "format": "uint32"},
    "uint64": {"type": "integer", "format": "uint64"},
    "bool": {"type": "boolean"},
    "float16": {"type": "number", "format": "float"},
    "float32": {"type": "number", "format": "float"},
    "float64": {"type": "number", "format": "double"},
    "object": {"type": "object"},
}


class Dtype2Swagger:
    @staticmethod
    def convert_dtype_to_swagger(dtype):
        if dtype.names:
            return {"type": "object", "properties": {n: Dtype2Swagger.convert_dtype_to_swagger(dtype[n]) for n in dtype.names}}
        if dtype.subdtype is not None:
            inner, shape = dtype.subdtype
            return Dtype2Swagger.handle_swagger_array(Dtype2Swagger.convert_dtype_to_swagger(inner), shape)
        name = dtype.name.lower()
        if name in _SIMPLE:
            return dict(_SIMPLE[name])
        if name.startswith("datetime"):
            return {"type": "string", "format": "date-time"}
        if name.startswith("timedelta"):
            return {"type": "string", "format": "timedelta"}
        if name.startswith("str"):
            return {"type": "string"}
        if name.startswith("bytes") or name.startswith("void"):
            return {"type": "string", "format": "binary"}
        raise TypeError("We currently do not support extracting schema from data of type %s" % name)

    @staticmethod
    def handle_swagger_array(item_schema, shape):
        """An array schema nested once per dimension of `shape`."""
        schema = {"type": "array", "items": item_schema}
        for _ in range(len(shape) - 1):
            schema = {"type": "array", "items": schema}
        return schema
