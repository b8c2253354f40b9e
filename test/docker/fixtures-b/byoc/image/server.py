"""A tiny TF-Serving-shaped model server: y = a*x + b for each instance.

GET  /v1/models/<name>          model status (liveness and readiness)
POST /v1/models/<name>:predict  {"instances": [...]} -> {"predictions": [...], "host": ...}
GET  /ready                     readiness that can be switched off
POST /admin/ready  /admin/unready   switch it (the tests call these on the published port directly)

a and b come from $MODEL_BASE_PATH/$MODEL_NAME/coefficients.json when a model is mounted (Azure's
tfserving example mounts one), else 0.5 and 2 (the "integrated" variant: nothing mounted).
"""
import json
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = os.environ.get("MODEL_NAME", "half_plus_two")
A, B, SOURCE = 0.5, 2.0, "built in"
base = os.environ.get("MODEL_BASE_PATH")
if base:
    path = os.path.join(base, NAME, "coefficients.json")
    with open(path) as f:
        c = json.load(f)
    A, B, SOURCE = float(c["a"]), float(c["b"]), path
READY = {"ok": True}
HOST = socket.gethostname()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response, sent at once (headers and body in separate small writes would meet the
    # peer's delayed ACK: ~40 ms a request, which the tests would then measure instead of the router).
    wbufsize = -1
    disable_nagle_algorithm = True

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/v1/models/" + NAME:
            self.answer(200, {"model_version_status": [{"version": "1", "state": "AVAILABLE"}]})
        elif self.path == "/ready":
            self.answer(200 if READY["ok"] else 503, {"ready": READY["ok"]})
        else:
            self.answer(404, {"error": "no route " + self.path})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/v1/models/" + NAME + ":predict":
            try:
                xs = json.loads(body)["instances"]
                self.answer(200, {"predictions": [A * float(x) + B for x in xs], "host": HOST})
            except Exception as e:  # a bad request is the client's, as TF Serving answers it
                self.answer(400, {"error": str(e)})
        elif self.path in ("/admin/ready", "/admin/unready"):
            READY["ok"] = self.path == "/admin/ready"
            self.answer(200, {"ready": READY["ok"]})
        else:
            self.answer(404, {"error": "no route " + self.path})

    def log_message(self, fmt, *args):
        pass


print("model server: %s, y = %s*x + %s (%s), on 8501" % (NAME, A, B, SOURCE), flush=True)
ThreadingHTTPServer(("0.0.0.0", 8501), Handler).serve_forever()
