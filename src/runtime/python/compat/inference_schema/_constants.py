INPUT_SCHEMA_ATTR = "input_schema"
OUTPUT_SCHEMA_ATTR = "output_schema"
# Swagger / OpenAPI versions a decorated function can be described in.
ALL_SUPPORTED_VERSIONS = ["2.0", "3.0", "3.1"]
