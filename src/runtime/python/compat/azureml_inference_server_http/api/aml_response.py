"""`from azureml_inference_server_http.api.aml_response import AMLResponse`: see infergate_http.py."""
from infergate_http import AMLResponse  # noqa: F401
