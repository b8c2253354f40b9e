#!/usr/bin/env bash
# The README's first command: installs what is missing, starts infergate with Azure's example endpoint
# deployed (endpoint.yml + blue-deployment.yml from examples/azureml), prints how to call it, and keeps
# the server in the foreground (Ctrl-C stops it and its instances).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export INFERGATE_HOME="${INFERGATE_HOME:-$PWD/.infergate}"
IG="node bin/infergate.js"
E="${ENDPOINT_NAME:-my-endpoint}"
S=examples/azureml/managed/sample

# Azure's blue-deployment.yml names Azure's image, which no registry gives us here: where the docker
# backend will run it, the local base image (scripts/docker-base-image.sh) stands in under that name.
AZURE_IMAGE=mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest
if docker image inspect infergate-python:bookworm >/dev/null 2>&1 && ! docker image inspect "$AZURE_IMAGE" >/dev/null 2>&1; then
  echo "quickstart: tagging infergate-python:bookworm as $AZURE_IMAGE (docs/backends.md)"
  docker tag infergate-python:bookworm "$AZURE_IMAGE"
fi

$IG server "$@" &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER' INT TERM
# server.json names the server once both its ports listen (it is written first, without URLs, when the
# workspace lock is won).
for _ in $(seq 1 200); do grep -qs '"url": "http' "$INFERGATE_HOME/server.json" && break; sleep 0.1; done

if ! $IG ml online-endpoint show -n "$E" >/dev/null 2>&1; then
  $IG ml online-endpoint create --name "$E" -f $S/endpoint.yml -o none
  $IG ml online-deployment create --name blue --endpoint "$E" -f $S/blue-deployment.yml --all-traffic -o none
fi
$IG ml online-endpoint invoke --name "$E" --request-file examples/azureml/model-1/sample-request.json
KEY=$($IG ml online-endpoint get-credentials -n "$E" -o tsv --query primaryKey)
URI=$($IG ml online-endpoint show -n "$E" -o tsv --query scoring_uri)
cat <<MSG

infergate is running with endpoint '$E' (deployment 'blue', 100% traffic). Score it with:

  curl -X POST "$URI" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \\
       --data @examples/azureml/model-1/sample-request.json

Other commands: INFERGATE_HOME=$INFERGATE_HOME node bin/infergate.js ml online-endpoint --help
Ctrl-C stops the server and its instances.
MSG
wait $SERVER
