"""`from azureml.contrib.services.aml_request import AMLRequest, rawhttp` (the legacy import path used by
Azure's binary-payloads example), served by infergate without Flask: see infergate_http.py."""
from infergate_http import AMLRequest, rawhttp  # noqa: F401
