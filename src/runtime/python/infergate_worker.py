#!/usr/bin/env python3
"""infergate's Python worker: runs one Azure ML scoring script (score.py with init() and run()).

Started by the instance host (src/runtime/host.ts) as `<INFERGATE_PYTHON> -u infergate_worker.py`, one
process per WORKER_COUNT, with cwd = AML_APP_ROOT. Standard library only, Python 3.9+: it has to run in
whatever interpreter the user's environment provides.

Also a module: the Python instance host (infergate_host.py) serves WORKER_COUNT=1 in its own process with
these same pieces (take_frame_channel's fd moves, configure_logging(), load_and_init(), Worker.handle(),
_scan_cancels()), so importing this file has no side effects; main() is what only a worker process does.

Why a framed pipe and not HTTP: DESIGN.md "The instance protocol". A persistent worker fed length-prefixed
frames over stdin/stdout measured 0.69-0.91x a bare Node server; Python's own HTTP servers 0.05-0.30x.

Channels
  fd 0 (original stdin)   REQUEST frames from the host           -> kept as a private fd, fd 0 -> /dev/null
  fd 1 (original stdout)  RESPONSE frames to the host            -> kept as a private fd, fd 1 -> stderr
  fd 2                    the instance's console log (log lines, print() output, tracebacks)
The private fds are taken (main(): take_frame_channel()) before any user code runs, so print(), os.write(1, ...) or a C library writing
to stdout land in the console log and can never corrupt a frame, and input() sees end-of-file instead
of eating frames.

Frames: docs/protocol.md, exactly src/protocol/frame.ts (keep the two in step; the golden frames in
src/protocol/testdata/ run through both). All integers big-endian.
  u32 length (bytes after this field) | u32 id | u8 type (1 REQUEST, 2 RESPONSE, 3 CANCEL) | payload
  REQUEST payload:  u8 methodLen, method | u16 urlLen, url | u16 headerCount,
                    per header: u16 nameLen, name (lower-case) | u16 valueLen, value | body (the rest)
  RESPONSE payload: u16 status | u16 headerCount, headers as above | body (the rest)
The host re-maps ids, so ids here are the host's: 1..2^32-1.
CANCEL (host -> worker): drop request `id` if it has not started. The worker skips a REQUEST whose CANCEL
it has read by the time it would run it, and echoes the CANCEL back (worker -> host) instead of an answer,
so the host knows the id is free. A CANCEL for a request already answered (or running) is ignored: the
request's answer is the host's signal. To see CANCELs that arrive while run() is busy, the worker looks
for more input (without blocking) after any run() slow enough to flush answers on its own (FLUSH_AFTER_S).

Init report (infergate's own convention, mirrored in src/runtime/python-pool.ts):
  The worker's FIRST frame is a RESPONSE with id 0 (never a request id), content-type application/json:
    status 200, body {"ok": true, "pid": <pid>}                                  init() returned
    status 500, body {"ok": false, "code": "<code>", "message": "<text>"}         it did not
  where code is UserScriptImportError | UserScriptFunctionNotFound | UserScriptInitFailed (src/protocol/messages.ts
  HostMessage) and message carries the script's own error text and traceback. After a failure report the
  worker exits with code 3, as azmlinfsrv does (contract section 5.4).

Routes (contract section 5.3), on the url the frame carries (the path after the endpoint):
  GET /                  200 "Healthy" (liveness)
  GET|POST|OPTIONS /score  run(), see below; any other method 405
  GET /swagger.json      ?version=2 (default) | 3 | 3.1: the app root's swagger.json / swagger<ver>.json
                         as it is, else generated from swagger2_template.json / swagger3_template.json with
                         the @input_schema / @output_schema schemas (section 5.7); unknown version -> 404
  /v2, /v2/...           only when the entry script defines infergate_routes(method, path, body) -> (status,
                         value): infergate's MLflow loader (infergate_mlflow.py) serves the Open Inference
                         Protocol there; value is sent as JSON
  anything else          404 {"message": "The requested URL was not found on the server. ..."}

How run() is called (section 5.4), decided once at start-up:
  undecorated   POST: run(body decoded as UTF-8), undecodable -> 400 "Input cannot be decoded as UTF-8: ...";
                GET: run(json.dumps(query parameters)), each value JSON-parsed if it can be, repeats -> list;
                OPTIONS: 200, empty body
  @input_schema POST needs Content-Type application/json (else 415) and a JSON object body (else 400 with
                azmlinfsrv's messages); GET takes the query parameters; run(**parameters), each converted by
                its declared type (a value that does not fit -> 400 with the reason, infergate's choice)
  @rawhttp      run(AMLRequest) for GET, POST and OPTIONS (compat/infergate_http.py: Flask's request API)
  run() may declare a parameter named request_headers: it gets a dict of the request headers with
  Flask's Title-Case names (dict(request.headers) in azmlinfsrv).
  The scripts' imports of azureml.contrib.services, azureml_inference_server_http.api and inference_schema
  are served from compat/ when those packages are not installed (compat/ is at the END of sys.path).

Answers: a response object (AMLResponse, or anything with status_code, headers and get_data(), e.g. a Flask
Response) is sent as it is, with x-ms-run-function-failed: True when its status is >= 500. Anything else is
sent as json.dumps(result) (default separators; numpy values and DataFrames as lists / records), 200,
application/json. run() raising -> 500 {"message": "An unexpected error occurred in scoring script. Check the
logs for more info."} with x-ms-run-function-failed: True and "Encountered Exception: Traceback ..." in the
console log. run() exceeding SCORING_TIMEOUT_MS (SIGALRM, as azmlinfsrv) -> 500 "Scoring timeout after <ms> ms".
Every answer from run() carries x-ms-run-function-failed and x-ms-run-fn-exec-ms. Every answer echoes
x-request-id, x-ms-request-id (x-ms-request-id, else x-ms-client-request-id, else x-request-id),
x-ms-client-request-id and TraceId when the request has them, and carries x-ms-server-version when
HTTP_X_MS_SERVER_VERSION is set; any of the three ids over 100 characters -> 431 (section 5.5).
"""

import importlib.util
import inspect
import json
import logging
import os
import select
import signal
import struct
import sys
import time
import traceback
import urllib.parse

# Importing this module does nothing else: infergate_host.py imports it to run the script in its own process
# (WORKER_COUNT=1), and main() below does what only a worker process needs.
_HERE = os.path.dirname(os.path.abspath(__file__))
_COMPAT = os.path.join(_HERE, "compat")


def take_frame_channel():
    """Moves the frame channel off fds 0 and 1 before any user code runs; returns (in_fd, out_fd).

    os.dup returns non-inheritable fds (PEP 446), so subprocesses started by user code do not get them.
    """
    in_fd = os.dup(0)
    out_fd = os.dup(1)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return in_fd, out_fd


def isolate_sys_path():
    """Our own directory is sys.path[0] when this file or the host is run as a script: user code must not
    import from it. (Its compat/ folder goes at the end of sys.path in load_and_init().)"""
    if sys.path and sys.path[0] and os.path.abspath(sys.path[0]) == _HERE:
        del sys.path[0]


FRAME_REQUEST = 1
FRAME_RESPONSE = 2
FRAME_CANCEL = 3
HEADER_BYTES = 9  # u32 length + u32 id + u8 type
READ_SIZE = 1 << 16
# Answers are written in batches (one flush for all frames of one read), but never held back longer than
# this once one is ready: coalescing must not turn a slow request's neighbours into slow ones, and the
# router can only answer (and wrk send more) once it has them. Measured with Azure's model-1 (~35 us per
# run()) behind the router, wrk -c32: 2 ms -> 12.5k req/s, 1 ms -> 16-18k, 0.5 ms -> 17-18k, 0.1 ms -> 15-17k
# (more writes); a trivial run() is unaffected (~120k req/s worker-only either way).
FLUSH_AFTER_S = 0.0005

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_RESPONSE_HEAD = struct.Struct(">IIBHH")  # length, id, type, status, headerCount

RUN_FAILED_MESSAGE = "An unexpected error occurred in scoring script. Check the logs for more info."
INTERNAL_ERROR_MESSAGE = "An unexpected internal error occurred. Check the logs for more info."


# --- Logging in azmlinfsrv's format (contract section 5.1), to stderr. -----------------------------------
class _Formatter(logging.Formatter):
    """`2022-12-24 07:37:54,518 I [32756] azmlinfsrv - message` (UTC, level initial).

    format() gives what the %-pattern below gives, written out by hand: scoring scripts log on every request
    (Azure's model-1 logs twice per run()), so the time stamp is formatted once per second, not per line.
    """

    converter = time.gmtime

    def __init__(self):
        super().__init__("%(asctime)s %(levelname).1s [%(process)d] %(name)s - %(message)s")
        self._second = None
        self._stamp = ""

    def format(self, record):
        record.message = record.getMessage()
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        line = "%s,%03d %s [%d] %s - %s" % (self._stamp, record.msecs, record.levelname[:1], record.process,
                                            record.name, record.message)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = line + "\n" + record.exc_text
        if record.stack_info:
            line = line + "\n" + self.formatStack(record.stack_info)
        return line


def configure_logging():
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = logging.getLevelName(os.environ.get("AZUREML_LOG_LEVEL", "INFO").upper())
    root.setLevel(level if isinstance(level, int) else logging.INFO)


logger = logging.getLogger("azmlinfsrv")
script_logger = logging.getLogger("azmlinfsrv.user_script")


# --- Frame codec (mirror of src/protocol/frame.ts). ------------------------------------------------------------
def _header(name, value):
    """One encoded header: u16 nameLen, name | u16 valueLen, value."""
    k = name.encode("latin-1")
    v = value.encode("utf-8")
    return _U16.pack(len(k)) + k + _U16.pack(len(v)) + v


def response_frame(rid, status, headers, body):
    """A whole RESPONSE frame; headers are pre-encoded with _header()."""
    hb = b"".join(headers)
    return _RESPONSE_HEAD.pack(HEADER_BYTES + len(hb) + len(body), rid, FRAME_RESPONSE, status, len(headers)) + hb + body


def cancel_frame(rid):
    """A CANCEL frame: the header alone."""
    return _U32.pack(HEADER_BYTES - 4) + _U32.pack(rid) + bytes((FRAME_CANCEL,))


def decode_request_head(buf, pos):
    """Decodes the REQUEST frame starting at buf[pos]; returns (method, url, headers, body_start)."""
    ml = buf[pos + 9]
    p = pos + 10
    method = buf[p:p + ml].decode("latin-1")
    p += ml
    (ul,) = _U16.unpack_from(buf, p)
    url = buf[p + 2:p + 2 + ul].decode("utf-8")
    p += 2 + ul
    (count,) = _U16.unpack_from(buf, p)
    p += 2
    headers = []
    for _ in range(count):
        (kl,) = _U16.unpack_from(buf, p)
        name = buf[p + 2:p + 2 + kl].decode("latin-1")
        p += 2 + kl
        (vl,) = _U16.unpack_from(buf, p)
        headers.append((name, buf[p + 2:p + 2 + vl].decode("utf-8")))
        p += 2 + vl
    return method, url, headers, p


# Headers that never change, encoded once.
H_JSON = _header("content-type", "application/json")
H_TEXT = _header("content-type", "text/plain; charset=utf-8")
H_HTML = _header("content-type", "text/html; charset=utf-8")
H_FAILED_FALSE = _header("x-ms-run-function-failed", "False")
H_FAILED_TRUE = _header("x-ms-run-function-failed", "True")
H_ALLOW_HEALTH = _header("allow", "GET, HEAD, OPTIONS")
H_ALLOW_SWAGGER = _header("allow", "GET, HEAD, OPTIONS")


def _message_body(message):
    return json.dumps({"message": message}).encode()


RUN_FAILED_BODY = _message_body(RUN_FAILED_MESSAGE)
INTERNAL_ERROR_BODY = _message_body(INTERNAL_ERROR_MESSAGE)
# werkzeug's descriptions, as azmlinfsrv returns them for Flask's own 404 and 405 (section 5.3, 5.6).
NOT_FOUND_BODY = _message_body(
    "The requested URL was not found on the server. If you entered the URL manually please check your "
    "spelling and try again.")
METHOD_NOT_ALLOWED_BODY = _message_body("The method is not allowed for the requested URL.")
# The server's own branch for a method the input parser does not know (HEAD on /score).
SCORE_METHOD_NOT_ALLOWED_BODY = _message_body("Method not allowed")
NOT_JSON_BODY = _message_body("Expects Content-Type to be application/json")
EMPTY_BODY = _message_body("POST body is empty. Expecting a JSON dictionary.")
NOT_A_DICT_BODY = _message_body("POST body should be a JSON dictionary.")

# Response headers that belong to the HTTP connection, not to the answer: the HTTP edge sets them.
_CONNECTION_HEADERS = frozenset(("content-length", "transfer-encoding", "connection", "keep-alive"))


# --- Loading the user's script (contract section 5.4). ----------------------------------------------------
class InitFailure(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class ScoringTimeout(BaseException):
    """Raised by SIGALRM inside run(). A BaseException so a script's `except Exception` cannot swallow it."""


def _user_traceback(exc):
    """The traceback without this file's own frame on top, so the user sees their code first."""
    tb = exc.__traceback__
    if tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) == os.path.abspath(__file__):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _describe(exc):
    return "%s: %s" % (type(exc).__name__, exc)


def _log_model_dir():
    """azmlinfsrv lists the model directory (first 200 lines) when init() fails: the usual cause is a path."""
    model_dir = os.environ.get("AZUREML_MODEL_DIR", "")
    if not model_dir or not os.path.isdir(model_dir):
        logger.error("Model directory %r does not exist.", model_dir)
        return
    lines = []
    for root, dirs, files in os.walk(model_dir):
        dirs.sort()
        rel = os.path.relpath(root, model_dir)
        depth = 0 if rel == "." else rel.count(os.sep) + 1
        lines.append("%s%s/" % ("    " * depth, root if depth == 0 else os.path.basename(root)))
        for f in sorted(files):
            lines.append("%s%s" % ("    " * (depth + 1), f))
        if len(lines) >= 200:
            break
    logger.error("Model Directory Contents:\n%s", "\n".join(lines[:200]))


MODE_JSON = "json"  # undecorated: the body as a string
MODE_SCHEMA = "schema"  # @input_schema: keyword arguments from a JSON object
MODE_RAW = "raw"  # @rawhttp: the request object


class Script:
    """What the worker needs to know about the loaded run(): how to call it and its swagger documents."""

    def __init__(self, run, mode, data_param, positional, wants_headers, required, swaggers):
        self.run = run
        self.mode = mode
        self.data_param = data_param
        self.positional = positional
        self.wants_headers = wants_headers
        self.required = required
        self.swaggers = swaggers
        # /v2/... for a no-code model's loader (infergate_mlflow.py): its infergate_routes(method, path, body).
        self.extra_routes = None


def _raw_http_requested(run):
    """@rawhttp from our compat module or from the real azureml-inference-server-http (a module flag)."""
    if getattr(run, "_infergate_rawhttp", False):
        return True
    for name in ("infergate_http", "azureml_inference_server_http.api.aml_request", "azureml.contrib.services.aml_request"):
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "_rawHttpRequested", False):
            return True
    return False


def _schema_util():
    """inference_schema.schema_util if the script imported inference-schema (ours or the real one)."""
    return sys.modules.get("inference_schema.schema_util")


def load_and_init():
    """Imports the entry script as `entry_module`, checks init/run, calls init(). Returns a Script."""
    app_root = os.path.abspath(os.environ.get("AML_APP_ROOT") or os.getcwd())
    entry = os.environ.get("AZUREML_ENTRY_SCRIPT") or ""
    if not entry:
        raise InitFailure("UserScriptImportError", "AZUREML_ENTRY_SCRIPT is not set.")
    entry = os.path.join(app_root, entry)  # an absolute entry wins, as os.path.join does
    if not os.path.isfile(entry):
        raise InitFailure("UserScriptImportError", "User script at %s does not exist." % entry)

    # The app root (contract section 5.2), AZUREML_SOURCE_DIRECTORY below it, and the script's folder, so a
    # score.py can import its neighbours.
    paths = [app_root]
    source_dir = os.environ.get("AZUREML_SOURCE_DIRECTORY")
    if source_dir:
        paths.append(os.path.join(app_root, source_dir))
    paths.append(os.path.dirname(entry))
    for p in reversed(paths):
        if p not in sys.path:
            sys.path.insert(0, p)
    # Last, so an installed azureml-inference-server-http or inference-schema is always preferred.
    if _COMPAT not in sys.path:
        sys.path.append(_COMPAT)

    script_logger.info("Found user script at %s", entry)
    spec = importlib.util.spec_from_file_location("entry_module", entry)
    if spec is None or spec.loader is None:
        raise InitFailure("UserScriptImportError", "User script at %s cannot be imported as a Python module." % entry)
    module = importlib.util.module_from_spec(spec)
    sys.modules["entry_module"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: B902 - SystemExit at import time is an import failure too
        text = _user_traceback(exc)
        script_logger.error("Failed to import user script at %s\n%s", entry, text.rstrip())
        raise InitFailure("UserScriptImportError",
                          "Failed to import user script at %s: %s\n%s" % (entry, _describe(exc), text))

    for name in ("init", "run"):
        if not callable(getattr(module, name, None)):
            raise InitFailure("UserScriptFunctionNotFound",
                              "User script at %s does not have a %s() function defined." % (entry, name))
    run = module.run
    script = _analyze_run(run, app_root)
    if callable(getattr(module, "infergate_routes", None)):
        script.extra_routes = module.infergate_routes

    script_logger.info("Invoking user's init function")
    try:
        module.init()
    except BaseException as exc:  # noqa: B902 - sys.exit() inside init() is an init failure too
        text = _user_traceback(exc)
        script_logger.error("User's init function failed")
        script_logger.error("Encountered Exception: %s", text.rstrip())
        _log_model_dir()
        raise InitFailure("UserScriptInitFailed", "User's init function failed: %s\n%s" % (_describe(exc), text))
    script_logger.info("Users's init has completed successfully")  # sic: azmlinfsrv's own wording
    util = _schema_util()
    script.swaggers = _prepare_swaggers(run, app_root, script.mode == MODE_SCHEMA and util is not None)
    return script


def _analyze_run(run, app_root):
    """azmlinfsrv's checks of run()'s signature and its choice of input mode (user_script.py)."""
    try:
        params = list(inspect.signature(run).parameters.values())
    except (TypeError, ValueError):
        params = []
    allowed = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    if any(p.kind not in allowed for p in params):
        raise InitFailure("UserScriptImportError", "run() cannot accept positional-only arguments, *args, or **kwargs.")
    wants_headers = any(p.name == "request_headers" for p in params)
    data_params = [p for p in params if p.name != "request_headers"]
    if not data_params:
        raise InitFailure("UserScriptImportError", 'run() needs to accept an argument other than "request_headers".'
                          if wants_headers else "run() needs to accept an argument for input data.")
    first = data_params[0]
    # Call with the data positionally when that is unambiguous (the fast path), by keyword otherwise.
    positional = params[0] is first and first.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD

    util = _schema_util()
    decorated = util is not None and util.is_schema_decorated(run)
    raw = _raw_http_requested(run)
    if raw and decorated:
        raise InitFailure("UserScriptImportError", "run() cannot be decorated with both @rawhttp and @input_schema")
    required = ()
    if raw:
        mode = MODE_RAW
        script_logger.info("run() is decorated with @rawhttp. Server will invoke it with the request object.")
    elif decorated:
        mode = MODE_SCHEMA
        required = tuple(p.name for p in data_params if p.default is inspect.Parameter.empty)
        script_logger.info("run() is decorated with @input_schema. Server will invoke it with the following arguments: %s.",
                           ", ".join(p.name for p in data_params))
    else:
        mode = MODE_JSON
        script_logger.info("run() is not decorated. Server will invoke it with the input in JSON string.")
    return Script(run, mode, first.name, positional, wants_headers, required, None)


# --- Swagger documents (contract section 5.7). ------------------------------------------------------------------
# (version, aliases accepted in ?version=, template, the user's own files in the app root, first wins)
_SWAGGER_BUILDERS = (
    ("2", ("2", "2.0"), "swagger2_template.json", ("swagger.json", "swagger2.json")),
    ("3", ("3", "3.0"), "swagger3_template.json", ("swagger3.json",)),
    ("3.1", ("3.1",), "swagger3_template.json", ("swagger3.1.json",)),
)
_SWAGGER_ALIASES = frozenset(a for _, aliases, _, _ in _SWAGGER_BUILDERS for a in aliases)


class Swaggers:
    def __init__(self, docs, versions):
        self.docs = docs  # alias -> encoded JSON body
        self.versions = versions  # the builder versions served, sorted

    def answer(self, version):
        """(status, body) for GET /swagger.json?version=<version>."""
        body = self.docs.get(version)
        if body is not None:
            return 200, body
        listed = ", ".join(self.versions)
        if version not in _SWAGGER_ALIASES:
            return 404, _message_body("Swagger version [%s] is not valid. Supported versions: [%s]." % (version, listed))
        return 404, _message_body("Swagger version [%s] is not supported for the scoring script. "
                                  "Supported swagger versions: [%s]." % (version, listed))


def _prepare_swaggers(run, app_root, decorated):
    """Every swagger document, built once at start-up; a failure is logged and leaves that version out."""
    swagger_log = logging.getLogger("azmlinfsrv.swagger")
    util = _schema_util()
    if decorated:
        supported = set(util.get_supported_versions(run))
        input_schema, output_schema = util.get_input_schema(run), util.get_output_schema(run)
    else:
        supported = {"2.0", "3.0", "3.1"}
        input_schema = output_schema = {"type": "object", "example": {}}
    prefix = os.environ.get("SERVICE_PATH_PREFIX", "").strip("/")
    substitutions = (
        ("$SERVICE_NAME$", os.environ.get("SERVICE_NAME", "ML service")),
        ("$SERVICE_VERSION$", os.environ.get("SERVICE_VERSION", "1.0")),
        ("$PATH_PREFIX$", "/" + prefix if prefix else ""),
    )
    docs, versions, skipped = {}, [], []
    for version, aliases, template, user_files in _SWAGGER_BUILDERS:
        try:
            doc = None
            for name in user_files:
                path = os.path.join(app_root, name)
                if os.path.isfile(path):
                    with open(path, "r", encoding="utf-8") as f:
                        doc = json.load(f)
                    swagger_log.info("Loaded user's swagger file for version [%s] from %s", version, path)
                    break
            if doc is None:
                if not supported.intersection(aliases):
                    skipped.append(version)
                    continue
                with open(os.path.join(_HERE, template), "r", encoding="utf-8") as f:
                    text = f.read()
                for key, value in substitutions:
                    text = text.replace(key, value)
                doc = json.loads(text)
                defs = doc["definitions"] if "definitions" in doc else doc["components"]["schemas"]
                defs["ServiceInput"] = input_schema
                defs["ServiceOutput"] = output_schema
                if version == "3.1":
                    doc["openapi"] = "3.1.0"
            body = json.dumps(doc, default=_json_default).encode()
        except Exception as exc:
            swagger_log.error("Could not prepare the swagger document for version [%s]: %s", version, _describe(exc))
            skipped.append(version)
            continue
        for alias in aliases:
            docs[alias] = body
        versions.append(version)
    if versions and skipped:
        swagger_log.info("Swaggers are prepared for versions [%s] and skipped for versions [%s].",
                         ", ".join(versions), ", ".join(skipped))
    elif versions:
        swagger_log.info("Swaggers are prepared for the following versions: [%s].", ", ".join(versions))
    else:
        swagger_log.info("No swagger is prepared.")
    return Swaggers(docs, versions)


def _json_default(value):
    """What json.dumps cannot write by itself: numpy arrays and scalars, DataFrames / Series, dates."""
    if hasattr(value, "tolist"):
        return value.tolist()
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        try:
            return to_dict(orient="records")
        except TypeError:
            return to_dict()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)


def _is_response(value):
    """An AMLResponse, a Flask / werkzeug Response, or anything else shaped like one."""
    return (not isinstance(value, (str, bytes, dict, list, tuple)) and hasattr(value, "status_code")
            and hasattr(value, "headers") and callable(getattr(value, "get_data", None)))


class BadInput(Exception):
    def __init__(self, status, body):
        super().__init__(status)
        self.status = status
        self.body = body


# --- Serving. -----------------------------------------------------------------------------------------------
class Worker:
    def __init__(self, script, timeout_ms):
        self.script = script
        self.run = script.run
        self.mode = script.mode
        self.timeout_ms = timeout_ms
        self.timeout_s = timeout_ms / 1000.0 if timeout_ms > 0 else 0.0
        self.timeout_body = _message_body("Scoring timeout after %d ms" % timeout_ms)
        server_version = os.environ.get("HTTP_X_MS_SERVER_VERSION", "")
        self.base_headers = [_header("x-ms-server-version", server_version)] if server_version else []
        if self.mode == MODE_RAW:
            import infergate_http  # compat/: on sys.path since load_and_init()

            self.request_class = infergate_http.AMLRequest
        if self.timeout_s:
            signal.signal(signal.SIGALRM, _on_alarm)

    def handle(self, buf, pos, end):
        """Answers the REQUEST frame buf[pos:end]; returns the whole RESPONSE frame."""
        (rid,) = _U32.unpack_from(buf, pos + 4)
        try:
            method, url, headers, body_start = decode_request_head(buf, pos)
        except (IndexError, struct.error, UnicodeDecodeError):
            return response_frame(rid, 400, [H_JSON], _message_body("Malformed request frame."))

        # Correlation ids (contract section 5.5): echoed, at most 100 characters.
        request_id = ms_request_id = client_request_id = trace_id = None
        for name, value in headers:
            c = name[:1]
            if c == "x":
                if name == "x-request-id":
                    request_id = value
                elif name == "x-ms-request-id":
                    ms_request_id = value
                elif name == "x-ms-client-request-id":
                    client_request_id = value
            elif c == "t" and name == "traceid":
                trace_id = value
        id_headers = self.base_headers
        if request_id is not None or ms_request_id is not None or client_request_id is not None or trace_id is not None:
            if request_id is not None and len(request_id) > 100:
                return response_frame(rid, 431, [H_JSON], _message_body("x-request-id must not exceed 100 characters"))
            if (ms_request_id and len(ms_request_id) > 100) or (client_request_id and len(client_request_id) > 100):
                return response_frame(rid, 431, [H_JSON], _message_body(
                    "x-ms-request-id and x-ms-client-request-id must not exceed 100 characters"))
            id_headers = list(id_headers)
            if request_id is not None:
                id_headers.append(_header("x-request-id", request_id))
            legacy = ms_request_id or client_request_id or request_id
            if legacy:
                id_headers.append(_header("x-ms-request-id", legacy))
            if client_request_id is not None:
                id_headers.append(_header("x-ms-client-request-id", client_request_id))
            if trace_id is not None:
                id_headers.append(_header("traceid", trace_id))

        if url == "/score" or url.startswith("/score?"):
            if method == "POST" or method == "GET" or method == "OPTIONS":
                return self.score(rid, method, url, headers, buf, body_start, end, id_headers)
            if method == "HEAD":
                return response_frame(rid, 405, [H_JSON] + id_headers, SCORE_METHOD_NOT_ALLOWED_BODY)
            return response_frame(rid, 405, [H_JSON] + id_headers, METHOD_NOT_ALLOWED_BODY)
        path, _, query = url.partition("?")
        if path == "/":
            if method == "GET" or method == "HEAD":
                return response_frame(rid, 200, [H_TEXT] + id_headers, b"Healthy")
            if method == "OPTIONS":
                return response_frame(rid, 200, [H_HTML, H_ALLOW_HEALTH] + id_headers, b"")
            return response_frame(rid, 405, [H_JSON] + id_headers, METHOD_NOT_ALLOWED_BODY)
        if path == "/swagger.json":
            if method == "GET" or method == "HEAD":
                versions = urllib.parse.parse_qs(query).get("version")
                status, body = self.script.swaggers.answer(versions[0] if versions else "2")
                return response_frame(rid, status, [H_JSON] + id_headers, body)
            if method == "OPTIONS":
                return response_frame(rid, 200, [H_HTML, H_ALLOW_SWAGGER] + id_headers, b"")
            return response_frame(rid, 405, [H_JSON] + id_headers, METHOD_NOT_ALLOWED_BODY)
        if self.script.extra_routes is not None and (path == "/v2" or path.startswith("/v2/")):
            return self.extra_route(rid, method, path, buf[body_start:end], id_headers)
        return response_frame(rid, 404, [H_JSON] + id_headers, NOT_FOUND_BODY)

    def extra_route(self, rid, method, path, body, id_headers):
        """The Open Inference Protocol (v2) of a no-code model (infergate_mlflow.py's infergate_routes)."""
        try:
            status, value = self.script.extra_routes(method, path, body)
            answer = json.dumps(value, default=_json_default).encode()
        except Exception as exc:
            logger.error("Encountered Exception: %s", _user_traceback(exc).rstrip())
            status, answer = 500, json.dumps({"error": "The model failed: %s" % _describe(exc)}).encode()
        return response_frame(rid, status, [H_JSON] + id_headers, answer)

    def score(self, rid, method, url, headers, buf, body_start, end, id_headers):
        """/score: builds run()'s arguments for the input mode, calls it, answers (section 5.4)."""
        mode = self.mode
        kwargs = None
        if mode == MODE_JSON:
            if method == "POST":
                try:
                    data = buf[body_start:end].decode("utf-8")
                except UnicodeDecodeError as exc:
                    return response_frame(rid, 400, [H_JSON] + id_headers,
                                          _message_body("Input cannot be decoded as UTF-8: %s" % exc))
            elif method == "GET":
                data = json.dumps(_query_params(url.partition("?")[2]))
            else:
                return response_frame(rid, 200, [H_HTML, H_FAILED_FALSE] + id_headers, b"")
        elif mode == MODE_RAW:
            data = self.request_class(method, url, headers, buf[body_start:end])
        else:
            if method == "OPTIONS":
                return response_frame(rid, 200, [H_HTML, H_FAILED_FALSE] + id_headers, b"")
            try:
                kwargs = self.schema_arguments(method, url, headers, buf[body_start:end])
            except BadInput as bad:
                return response_frame(rid, bad.status, [H_JSON] + id_headers, bad.body)
            data = None

        script = self.script
        timeout_s = self.timeout_s
        t0 = time.perf_counter()
        if timeout_s:
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            if kwargs is not None:
                if script.wants_headers:
                    kwargs["request_headers"] = {k.title(): v for k, v in headers}
                result = self.run(**kwargs)
            elif script.positional:
                if script.wants_headers:
                    result = self.run(data, request_headers={k.title(): v for k, v in headers})
                else:
                    result = self.run(data)
            else:
                kw = {script.data_param: data}
                if script.wants_headers:
                    kw["request_headers"] = {k.title(): v for k, v in headers}
                result = self.run(**kw)
        except ScoringTimeout:
            logger.error("Scoring timeout after %d ms", self.timeout_ms)
            return self._failed(rid, t0, self.timeout_body, id_headers)
        except Exception as exc:
            if getattr(exc, "_infergate_bad_input", False):
                # inference-schema could not convert a value to its declared type: the client's input.
                return response_frame(rid, 400, [H_JSON] + id_headers, _message_body(str(exc)))
            logger.error("Encountered Exception: %s", _user_traceback(exc).rstrip())
            return self._failed(rid, t0, RUN_FAILED_BODY, id_headers)
        finally:
            if timeout_s:
                signal.setitimer(signal.ITIMER_REAL, 0)
        exec_ms = (time.perf_counter() - t0) * 1000.0
        if _is_response(result):
            return self._response_object(rid, result, exec_ms, id_headers)
        try:
            body = json.dumps(result, default=_json_default).encode()
        except Exception as exc:
            logger.error("The value returned by run() cannot be serialized as JSON: %s", _user_traceback(exc).rstrip())
            return response_frame(rid, 500, [H_JSON] + id_headers, INTERNAL_ERROR_BODY)
        hdrs = [H_JSON, H_FAILED_FALSE, _header("x-ms-run-fn-exec-ms", "%.3f" % exec_ms)]
        if id_headers:
            hdrs.extend(id_headers)
        return response_frame(rid, 200, hdrs, body)

    def schema_arguments(self, method, url, headers, body):
        """run()'s keyword arguments for an @input_schema run() (azmlinfsrv's ObjectInput)."""
        if method == "POST":
            content_type = ""
            for name, value in headers:
                if name == "content-type":
                    content_type = value
            mimetype = content_type.split(";", 1)[0].strip().lower()
            if not (mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))):
                raise BadInput(415, NOT_JSON_BODY)
            if not body.strip():
                raise BadInput(400, EMPTY_BODY)
            try:
                params = json.loads(bytes(body).decode("utf-8"))
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
                raise BadInput(400, _message_body("POST body could not be decoded as JSON: %s" % exc)) from None
            if not isinstance(params, dict):
                raise BadInput(400, NOT_A_DICT_BODY)
        else:
            params = _query_params(url.partition("?")[2])
        for name in self.script.required:
            if name not in params:
                raise BadInput(400, _message_body("A value is not provided for the '%s' parameter." % name))
        params.pop("request_headers", None)
        return params

    def _response_object(self, rid, response, exec_ms, id_headers):
        """Sends an AMLResponse / Flask Response as it is (section 5.4)."""
        try:
            status = int(response.status_code)
            if not 100 <= status <= 999:
                raise ValueError("status %d is not an HTTP status code" % status)
            failed = status >= 500
            hdrs = []
            for name, value in response.headers.items():
                lname = str(name).lower()
                if lname in _CONNECTION_HEADERS:
                    continue
                if lname == "x-ms-run-function-failed":
                    value = "True" if failed else value
                    failed = False
                hdrs.append(_header(lname, str(value)))
            if failed:
                hdrs.append(H_FAILED_TRUE)
            hdrs.append(_header("x-ms-run-fn-exec-ms", "%.3f" % exec_ms))
            body = response.get_data()
            if isinstance(body, str):
                body = body.encode("utf-8")
        except Exception as exc:
            logger.error("The response returned by run() cannot be sent: %s", _user_traceback(exc).rstrip())
            return response_frame(rid, 500, [H_JSON] + id_headers, INTERNAL_ERROR_BODY)
        return response_frame(rid, status, hdrs + id_headers, bytes(body))

    @staticmethod
    def _failed(rid, t0, body, id_headers):
        exec_ms = (time.perf_counter() - t0) * 1000.0
        hdrs = [H_JSON, H_FAILED_TRUE, _header("x-ms-run-fn-exec-ms", "%.3f" % exec_ms)] + id_headers
        return response_frame(rid, 500, hdrs, body)

    def serve(self, inp, out):
        """Reads whatever is available, answers every complete frame, one flush per batch (perf F2).

        `inp` is an unbuffered binary file (one read() is one system call, so a poll with select() sees
        everything not yet read). Linear in the bytes received: chunks are appended to one bytearray
        (amortised O(1)), consumed frames trimmed from its front (O(1) in CPython), and a large frame's
        remainder is read in one go.
        """
        buf = bytearray()
        need = READ_SIZE
        fd = inp.fileno()
        cancelled = set()  # ids whose CANCEL is in buf, ahead of the REQUEST not processed yet
        scanned = 0  # offset in buf of the first frame not yet looked at for CANCELs
        while True:
            fresh = len(buf)
            if need > READ_SIZE:
                if not _read_into(inp, buf, need):
                    return
            else:
                chunk = inp.read(need)
                if not chunk:
                    return  # the host closed our stdin: shut down
                buf += chunk
            scanned = _scan_cancels(buf, scanned, cancelled, fresh)
            n = len(buf)
            pos = 0
            outs = []
            last_flush = time.perf_counter()
            while n - pos >= HEADER_BYTES:
                (length,) = _U32.unpack_from(buf, pos)
                end = pos + 4 + length
                if end > n:
                    break
                kind = buf[pos + 8]
                if kind == FRAME_REQUEST:
                    (rid,) = _U32.unpack_from(buf, pos + 4)
                    if cancelled and rid in cancelled:
                        cancelled.discard(rid)
                        outs.append(cancel_frame(rid))  # dropped unrun: the id is free
                        pos = end
                        continue
                    try:
                        outs.append(self.handle(buf, pos, end))
                    except BaseException as exc:  # noqa: B902 - e.g. a late SIGALRM; never lose the worker
                        logger.error("Internal error while handling a request: %s", _user_traceback(exc).rstrip())
                        outs.append(response_frame(rid, 500, [H_JSON], INTERNAL_ERROR_BODY))
                    now = time.perf_counter()
                    if now - last_flush > FLUSH_AFTER_S:
                        out.write(b"".join(outs))
                        out.flush()
                        outs = []
                        last_flush = now
                        # A slow run(): CANCELs for the requests behind it may be waiting in the pipe.
                        # One select() per flush, never per request on the fast path.
                        if select.select([fd], [], [], 0)[0]:
                            more = inp.read(READ_SIZE)
                            if more:
                                buf += more
                                scanned = _scan_cancels(buf, scanned, cancelled, n)
                                n = len(buf)
                elif kind == FRAME_CANCEL:
                    # Its REQUEST came earlier and was answered or skipped: nothing left to drop.
                    (rid,) = _U32.unpack_from(buf, pos + 4)
                    cancelled.discard(rid)
                pos = end
            if pos:
                del buf[:pos]  # CPython trims the front of a bytearray in O(1)
                # buf starts at a frame boundary again; a scan that stopped earlier resumes from it
                scanned = max(scanned - pos, 0)
            if outs:
                out.write(b"".join(outs))
                out.flush()
            # Read a big frame's remainder in one go rather than 64 KiB at a time.
            need = READ_SIZE
            if len(buf) >= 4:
                need = max(READ_SIZE, _U32.unpack_from(buf, 0)[0] + 4 - len(buf))


def _read_into(inp, buf, size):
    """Appends exactly `size` bytes of a big frame's remainder to buf, read in place; False at end of input.

    inp.read(64 MiB) would allocate the whole size on every read and shrink it to the 64 KiB a pipe gives:
    per-read cost growing with the frame (golden.test.ts measures 1 MiB vs 64 MiB frames). Nothing else can
    be answered before this frame is whole (frames are answered in order), so waiting for it costs nothing.
    """
    pos = len(buf)
    end = pos + size
    buf += bytes(size)
    with memoryview(buf) as view:
        while pos < end:
            got = inp.readinto(view[pos:end])
            if not got:
                return False  # the host closed our stdin: shut down
            pos += got
    return True


_CANCEL_LENGTH = _U32.pack(HEADER_BYTES - 4)  # a CANCEL frame's length field


def _scan_cancels(buf, pos, cancelled, fresh):
    """Adds the ids of the whole CANCEL frames from buf[pos:] to `cancelled`; returns where it stopped.

    `pos` is a frame boundary; buf[fresh:] was just read. Without a CANCEL's length field in the new bytes
    there is nothing to walk (a search in C, from 8 bytes back: a 9-byte CANCEL cut by the previous read
    has its length field there). The common case costs one find over the bytes read, never over what was
    there before (that would be quadratic in a large frame's size, as golden.test.ts checks).
    """
    if buf.find(_CANCEL_LENGTH, max(pos, fresh - (HEADER_BYTES - 1))) < 0:
        return pos
    n = len(buf)
    while n - pos >= HEADER_BYTES:
        (length,) = _U32.unpack_from(buf, pos)
        end = pos + 4 + length
        if end > n:
            break
        if buf[pos + 8] == FRAME_CANCEL:
            cancelled.add(_U32.unpack_from(buf, pos + 4)[0])
        pos = end
    return pos


def _on_alarm(signum, frame):
    raise ScoringTimeout()


def _query_params(query):
    """/score?a=1&b=x&b=y -> {"a": 1, "b": ["x", "y"]}: each value JSON-parsed when it can be (section 5.4)."""
    params = {}
    for key, values in urllib.parse.parse_qs(query, keep_blank_values=True).items():
        parsed = []
        for v in values:
            try:
                parsed.append(json.loads(v))
            except ValueError:
                parsed.append(v)
        params[key] = parsed[0] if len(parsed) == 1 else parsed
    return params


def _init_frame(ok, code=None, message=None):
    if ok:
        return response_frame(0, 200, [H_JSON], json.dumps({"ok": True, "pid": os.getpid()}).encode())
    return response_frame(0, 500, [H_JSON], json.dumps({"ok": False, "code": code, "message": message}).encode())


def _die_with_parent():
    """Linux: SIGKILL this worker if the host dies, even in the middle of a long run() (no orphans)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except Exception:
        pass  # not Linux: the host closing our stdin still ends the loop
    if os.getppid() == 1:
        sys.exit(0)  # the host is gone already


def main():
    frames_in_fd, frames_out_fd = take_frame_channel()  # first: nothing may write to fd 1 before this
    isolate_sys_path()
    configure_logging()
    _die_with_parent()
    # The host owns shutdown: it closes our stdin once in-flight requests are answered (graceful), and
    # kills us if that takes too long. A Ctrl-C or SIGTERM sent to the whole process group must not cut
    # requests short here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out = os.fdopen(frames_out_fd, "wb")
    inp = os.fdopen(frames_in_fd, "rb", buffering=0)
    logger.info("Python worker pid %d: %s (Python %s)", os.getpid(), sys.executable, sys.version.split()[0])
    try:
        script = load_and_init()
    except InitFailure as failure:
        out.write(_init_frame(False, failure.code, failure.message))
        out.flush()
        return 3
    try:
        timeout_ms = int(os.environ.get("SCORING_TIMEOUT_MS", "3600000"))
    except ValueError:
        timeout_ms = 3600000
    worker = Worker(script, timeout_ms)
    out.write(_init_frame(True))
    out.flush()
    try:
        worker.serve(inp, out)
    except BrokenPipeError:
        pass  # the host went away
    return 0


if __name__ == "__main__":
    sys.exit(main())
