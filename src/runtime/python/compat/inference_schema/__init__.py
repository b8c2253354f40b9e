"""infergate's stand-in for the `inference-schema` package (Azure ML's @input_schema / @output_schema).

Used only when the real package is not installed (this folder is at the end of sys.path). It keeps the
public API scoring scripts use and the OpenAPI schemas the real one generates for the swagger documents
(contract section 5.7), with the standard library plus numpy / pandas for their parameter types.
"""
