"""The baseline of bench/python-bench.mjs: a score.py served the way Azure's inference server serves it
(azmlinfsrv: Flask on gunicorn, one sync worker by default), reduced to what matters for throughput.

    gunicorn -w 1 -b 127.0.0.1:PORT --chdir bench python_bench_flask:app

BENCH_SCORE_PY is the scoring script (default: Azure's model-1 score.py) and AZUREML_MODEL_DIR its model
folder. As azmlinfsrv does for an undecorated run(): init() once per worker, POST /score calls
run(body as text) and answers json.dumps(result) as application/json. The root logger is at INFO, as
azmlinfsrv sets it, so the script's logging.info lines are written here too (to stderr) as they are by
infergate's worker.
"""
import importlib.util
import json
import logging
import os
import sys

from flask import Flask, Response, request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.environ.get("BENCH_SCORE_PY") or os.path.join(ROOT, "examples/azureml/model-1/onlinescoring/score.py")
os.environ.setdefault("AZUREML_MODEL_DIR", os.path.join(ROOT, "examples/azureml/model-1"))

logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format="%(asctime)s %(levelname).1s [%(process)d] %(name)s - %(message)s")

sys.dont_write_bytecode = True  # no __pycache__ in examples/
sys.path.insert(0, os.path.dirname(SCRIPT))
_spec = importlib.util.spec_from_file_location("entry_module", SCRIPT)
entry = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(entry)
entry.init()

app = Flask(__name__)


@app.route("/score", methods=["POST"])
def score():
    result = entry.run(request.get_data(as_text=True))
    return Response(json.dumps(result), status=200, mimetype="application/json")
