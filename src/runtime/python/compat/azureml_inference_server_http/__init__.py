"""infergate's stand-in for the parts of `azureml-inference-server-http` a scoring script imports
(`api.aml_request`, `api.aml_response`). Used only when the real package is not installed: this folder
is at the end of sys.path."""
