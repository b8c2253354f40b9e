"""`from azureml_inference_server_http.api.aml_request import AMLRequest, rawhttp`: see infergate_http.py."""
from infergate_http import AMLRequest, rawhttp  # noqa: F401
