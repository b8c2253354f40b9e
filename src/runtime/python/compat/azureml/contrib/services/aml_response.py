"""`from azureml.contrib.services.aml_response import AMLResponse`, served by infergate without Flask:
see infergate_http.py."""
from infergate_http import AMLResponse  # noqa: F401
