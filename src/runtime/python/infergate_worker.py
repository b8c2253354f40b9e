#!/usr/bin/env python3
"""infergate's Python worker: runs one Azure ML scoring script (score.py with init() and run()).

Started by the instance host (src/runtime/host.ts) as `<INFERGATE_PYTHON> -u infergate_worker.py`, one
process per WORKER_COUNT, with cwd = AML_APP_ROOT. Standard library only, Python 3.9+: it has to run in
whatever interpreter the user's environment provides.

Why a framed pipe and not HTTP: DESIGN.md "The instance protocol". A persistent worker fed length-prefixed
frames over stdin/stdout measured 0.69-0.91x a bare Node server; Python's own HTTP servers 0.05-0.30x.

Channels
  fd 0 (original stdin)   REQUEST frames from the host           -> kept as a private fd, fd 0 -> /dev/null
  fd 1 (original stdout)  RESPONSE frames to the host            -> kept as a private fd, fd 1 -> stderr
  fd 2                    the instance's console log (log lines, print() output, tracebacks)
The private fds are taken before any user code runs, so print(), os.write(1, ...) or a C library writing
to stdout land in the console log and can never corrupt a frame, and input() sees end-of-file instead
of eating frames.

Frames: exactly src/util/frame.ts (keep the two in step). All integers big-endian.
  u32 length (bytes after this field) | u32 id | u8 type (1 REQUEST, 2 RESPONSE, 3 CANCEL) | payload
  REQUEST payload:  u8 methodLen, method | u16 urlLen, url | u16 headerCount,
                    per header: u8 nameLen, name (lower-case) | u16 valueLen, value | body (the rest)
  RESPONSE payload: u16 status | u16 headerCount, headers as above | body (the rest)
The host re-maps ids, so ids here are the host's: 1..2^32-1. CANCEL frames are ignored.

Init report (infergate's own convention, mirrored in src/runtime/python-pool.ts):
  The worker's FIRST frame is a RESPONSE with id 0 (never a request id), content-type application/json:
    status 200, body {"ok": true, "pid": <pid>}                                  init() returned
    status 500, body {"ok": false, "code": "<code>", "message": "<text>"}         it did not
  where code is UserScriptImportError | UserScriptFunctionNotFound | UserScriptInitFailed (contract.ts
  HostMessage) and message carries the script's own error text and traceback. After a failure report the
  worker exits with code 3, as azmlinfsrv does (contract section 5.4).

Request handling (contract section 5.4-5.6, undecorated run() only):
  POST            run(body decoded as UTF-8)        undecodable -> 400 "Input cannot be decoded as UTF-8: ..."
  GET /           200 "Healthy" (the liveness route)
  GET other       run(json.dumps(query parameters)), each value JSON-parsed if it can be, repeats -> list
  OPTIONS         200, empty body
  anything else   405
  run() may declare a parameter named request_headers: it gets a dict of the request headers with
  Flask's Title-Case names (dict(request.headers) in azmlinfsrv).
  The result is sent as json.dumps(result) (default separators), 200, application/json. run() raising ->
  500 {"message": "An unexpected error occurred in scoring script. Check the logs for more info."} with
  x-ms-run-function-failed: True and "Encountered Exception: Traceback ..." in the console log.
  run() exceeding SCORING_TIMEOUT_MS (SIGALRM, as azmlinfsrv) -> 500 "Scoring timeout after <ms> ms".
  Every answer from run() carries x-ms-run-function-failed and x-ms-run-fn-exec-ms; x-request-id,
  x-ms-request-id and x-ms-client-request-id are echoed when the request has them (section 5.5).
"""

import os
import sys

# --- Take the frame channel off fds 0 and 1 before anything else can write to them. -------------------
# os.dup returns non-inheritable fds (PEP 446), so subprocesses started by user code do not get them.
_FRAMES_IN_FD = os.dup(0)
_FRAMES_OUT_FD = os.dup(1)
os.dup2(2, 1)
_devnull = os.open(os.devnull, os.O_RDONLY)
os.dup2(_devnull, 0)
os.close(_devnull)

import importlib.util  # noqa: E402  (after the fd shuffle on purpose)
import inspect  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import urllib.parse  # noqa: E402

# Our own directory is sys.path[0] (the script's folder); user code must not import from it.
_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and sys.path[0] and os.path.abspath(sys.path[0]) == _HERE:
    del sys.path[0]

FRAME_REQUEST = 1
FRAME_RESPONSE = 2
FRAME_CANCEL = 3
HEADER_BYTES = 9  # u32 length + u32 id + u8 type
READ_SIZE = 1 << 16
# Answers are written in batches (one flush for all frames of one read), but never held back longer than
# this once one is ready: coalescing must not turn a slow request's neighbours into slow ones.
FLUSH_AFTER_S = 0.002

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_RESPONSE_HEAD = struct.Struct(">IIBHH")  # length, id, type, status, headerCount

RUN_FAILED_MESSAGE = "An unexpected error occurred in scoring script. Check the logs for more info."
INTERNAL_ERROR_MESSAGE = "An unexpected internal error occurred. Check the logs for more info."


# --- Logging in azmlinfsrv's format (contract section 5.1), to stderr. -----------------------------------
class _Formatter(logging.Formatter):
    """`2022-12-24 07:37:54,518 I [32756] azmlinfsrv - message` (UTC, level initial)."""

    converter = time.gmtime

    def __init__(self):
        super().__init__("%(asctime)s %(levelname).1s [%(process)d] %(name)s - %(message)s")


def _configure_logging():
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = logging.getLevelName(os.environ.get("AZUREML_LOG_LEVEL", "INFO").upper())
    root.setLevel(level if isinstance(level, int) else logging.INFO)


logger = logging.getLogger("azmlinfsrv")
script_logger = logging.getLogger("azmlinfsrv.user_script")


# --- Frame codec (mirror of src/util/frame.ts). ------------------------------------------------------------
def _header(name, value):
    """One encoded header: u8 nameLen, name | u16 valueLen, value."""
    k = name.encode("latin-1")
    v = value.encode("utf-8")
    return bytes((len(k),)) + k + _U16.pack(len(v)) + v


def response_frame(rid, status, headers, body):
    """A whole RESPONSE frame; headers are pre-encoded with _header()."""
    hb = b"".join(headers)
    return _RESPONSE_HEAD.pack(HEADER_BYTES + len(hb) + len(body), rid, FRAME_RESPONSE, status, len(headers)) + hb + body


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
        kl = buf[p]
        name = buf[p + 1:p + 1 + kl].decode("latin-1")
        p += 1 + kl
        (vl,) = _U16.unpack_from(buf, p)
        headers.append((name, buf[p + 2:p + 2 + vl].decode("utf-8")))
        p += 2 + vl
    return method, url, headers, p


# Headers that never change, encoded once.
H_JSON = _header("content-type", "application/json")
H_TEXT = _header("content-type", "text/plain; charset=utf-8")
H_FAILED_FALSE = _header("x-ms-run-function-failed", "False")
H_FAILED_TRUE = _header("x-ms-run-function-failed", "True")


def _message_body(message):
    return json.dumps({"message": message}).encode()


RUN_FAILED_BODY = _message_body(RUN_FAILED_MESSAGE)
INTERNAL_ERROR_BODY = _message_body(INTERNAL_ERROR_MESSAGE)
METHOD_NOT_ALLOWED_BODY = _message_body("The method is not allowed for the requested URL.")


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


def load_and_init():
    """Imports the entry script as `entry_module`, checks init/run, calls init(). Returns (run, wants_headers)."""
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
    try:
        params = inspect.signature(run).parameters
    except (TypeError, ValueError):
        params = {}
    bad_kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD, inspect.Parameter.POSITIONAL_ONLY)
    if any(p.kind in bad_kinds for p in params.values()):
        raise InitFailure("UserScriptImportError", "run() cannot accept positional-only arguments, *args, or **kwargs.")
    wants_headers = "request_headers" in params
    if params and len(params) - (1 if wants_headers else 0) < 1:
        raise InitFailure("UserScriptImportError", "run() must accept at least one parameter for the input data.")
    script_logger.info("run() is not decorated. Server will invoke it with the input in JSON string.")

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
    return run, wants_headers


# --- Serving. -----------------------------------------------------------------------------------------------
class Worker:
    def __init__(self, run, wants_headers, timeout_ms):
        self.run = run
        self.wants_headers = wants_headers
        self.timeout_ms = timeout_ms
        self.timeout_s = timeout_ms / 1000.0 if timeout_ms > 0 else 0.0
        self.timeout_body = _message_body("Scoring timeout after %d ms" % timeout_ms)
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
        request_id = ms_request_id = client_request_id = None
        for name, value in headers:
            if name[:1] == "x":
                if name == "x-request-id":
                    request_id = value
                elif name == "x-ms-request-id":
                    ms_request_id = value
                elif name == "x-ms-client-request-id":
                    client_request_id = value
        id_headers = []
        if request_id is not None or ms_request_id is not None or client_request_id is not None:
            if request_id is not None and len(request_id) > 100:
                return response_frame(rid, 431, [H_JSON], _message_body("x-request-id must not exceed 100 characters"))
            if (ms_request_id and len(ms_request_id) > 100) or (client_request_id and len(client_request_id) > 100):
                return response_frame(rid, 431, [H_JSON], _message_body(
                    "x-ms-request-id and x-ms-client-request-id must not exceed 100 characters"))
            if request_id is not None:
                id_headers.append(_header("x-request-id", request_id))
            legacy = ms_request_id or client_request_id or request_id
            id_headers.append(_header("x-ms-request-id", legacy))
            if client_request_id is not None:
                id_headers.append(_header("x-ms-client-request-id", client_request_id))

        if method == "POST":
            try:
                data = buf[body_start:end].decode("utf-8")
            except UnicodeDecodeError as exc:
                return response_frame(rid, 400, [H_JSON] + id_headers,
                                      _message_body("Input cannot be decoded as UTF-8: %s" % exc))
        elif method == "GET":
            path, _, query = url.partition("?")
            if path == "/":
                return response_frame(rid, 200, [H_TEXT], b"Healthy")
            data = _query_to_json(query)
        elif method == "OPTIONS":
            return response_frame(rid, 200, id_headers, b"")
        else:
            return response_frame(rid, 405, [H_JSON] + id_headers, METHOD_NOT_ALLOWED_BODY)

        timeout_s = self.timeout_s
        t0 = time.perf_counter()
        if timeout_s:
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            if self.wants_headers:
                result = self.run(data, request_headers={k.title(): v for k, v in headers})
            else:
                result = self.run(data)
        except ScoringTimeout:
            logger.error("Scoring timeout after %d ms", self.timeout_ms)
            return self._failed(rid, t0, self.timeout_body, id_headers)
        except Exception as exc:
            logger.error("Encountered Exception: %s", _user_traceback(exc).rstrip())
            return self._failed(rid, t0, RUN_FAILED_BODY, id_headers)
        finally:
            if timeout_s:
                signal.setitimer(signal.ITIMER_REAL, 0)
        exec_ms = (time.perf_counter() - t0) * 1000.0
        try:
            body = json.dumps(result).encode()
        except Exception as exc:
            logger.error("The value returned by run() cannot be serialized as JSON: %s", _user_traceback(exc).rstrip())
            return response_frame(rid, 500, [H_JSON] + id_headers, INTERNAL_ERROR_BODY)
        hdrs = [H_JSON, H_FAILED_FALSE, _header("x-ms-run-fn-exec-ms", "%.3f" % exec_ms)]
        if id_headers:
            hdrs.extend(id_headers)
        return response_frame(rid, 200, hdrs, body)

    @staticmethod
    def _failed(rid, t0, body, id_headers):
        exec_ms = (time.perf_counter() - t0) * 1000.0
        hdrs = [H_JSON, H_FAILED_TRUE, _header("x-ms-run-fn-exec-ms", "%.3f" % exec_ms)] + id_headers
        return response_frame(rid, 500, hdrs, body)

    def serve(self, inp, out):
        """Reads whatever is available, answers every complete frame, one flush per batch (perf F2)."""
        buf = bytearray()
        need = READ_SIZE
        while True:
            chunk = inp.read1(need)
            if not chunk:
                return  # the host closed our stdin: shut down
            buf += chunk
            n = len(buf)
            pos = 0
            outs = []
            last_flush = time.perf_counter()
            while n - pos >= HEADER_BYTES:
                (length,) = _U32.unpack_from(buf, pos)
                end = pos + 4 + length
                if end > n:
                    break
                if buf[pos + 8] == FRAME_REQUEST:
                    try:
                        outs.append(self.handle(buf, pos, end))
                    except BaseException as exc:  # noqa: B902 - e.g. a late SIGALRM; never lose the worker
                        logger.error("Internal error while handling a request: %s", _user_traceback(exc).rstrip())
                        outs.append(response_frame(_U32.unpack_from(buf, pos + 4)[0], 500, [H_JSON], INTERNAL_ERROR_BODY))
                    now = time.perf_counter()
                    if now - last_flush > FLUSH_AFTER_S:
                        out.write(b"".join(outs))
                        out.flush()
                        outs = []
                        last_flush = now
                pos = end
            if pos:
                del buf[:pos]  # CPython trims the front of a bytearray in O(1)
            if outs:
                out.write(b"".join(outs))
                out.flush()
            # Read a big frame's remainder in one go rather than 64 KiB at a time.
            need = READ_SIZE
            if len(buf) >= 4:
                need = max(READ_SIZE, _U32.unpack_from(buf, 0)[0] + 4 - len(buf))


def _on_alarm(signum, frame):
    raise ScoringTimeout()


def _query_to_json(query):
    """GET /score?a=1&b=x&b=y -> '{"a": 1, "b": ["x", "y"]}' (each value JSON-parsed when it can be)."""
    params = {}
    for key, values in urllib.parse.parse_qs(query, keep_blank_values=True).items():
        parsed = []
        for v in values:
            try:
                parsed.append(json.loads(v))
            except ValueError:
                parsed.append(v)
        params[key] = parsed[0] if len(parsed) == 1 else parsed
    return json.dumps(params)


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
    _configure_logging()
    _die_with_parent()
    # The host owns shutdown: it closes our stdin once in-flight requests are answered (graceful), and
    # kills us if that takes too long. A Ctrl-C or SIGTERM sent to the whole process group must not cut
    # requests short here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out = os.fdopen(_FRAMES_OUT_FD, "wb")
    inp = os.fdopen(_FRAMES_IN_FD, "rb", buffering=READ_SIZE)
    logger.info("Python worker pid %d: %s (Python %s)", os.getpid(), sys.executable, sys.version.split()[0])
    try:
        run, wants_headers = load_and_init()
    except InitFailure as failure:
        out.write(_init_frame(False, failure.code, failure.message))
        out.flush()
        return 3
    try:
        timeout_ms = int(os.environ.get("SCORING_TIMEOUT_MS", "3600000"))
    except ValueError:
        timeout_ms = 3600000
    worker = Worker(run, wants_headers, timeout_ms)
    out.write(_init_frame(True))
    out.flush()
    try:
        worker.serve(inp, out)
    except BrokenPipeError:
        pass  # the host went away
    return 0


if __name__ == "__main__":
    sys.exit(main())
