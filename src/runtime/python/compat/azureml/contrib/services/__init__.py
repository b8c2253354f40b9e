"""infergate's stand-in for `azureml.contrib.services` (see infergate_http.py). No __init__.py in
`azureml/` and `azureml/contrib/`: they are namespace packages, so an installed Azure SDK's `azureml`
package is never shadowed."""
