#!/usr/bin/env python3
"""infergate's Python instance host: src/runtime/host.ts for a .py scoring script, where there is no Node.

On the docker backend an instance runs inside the deployment's own image, which has Python but no Node, so
the host there is this file: run as `python3 -u infergate_host.py` with cwd = AML_APP_ROOT. The process
backend runs it too for a .py script with WORKER_COUNT=1, as `<INFERGATE_PYTHON> -u infergate_host.py`
through setpriv (--pdeathsig KILL: this host has no IPC channel to notice the server's death), reading
the HostMessage line from stdout (src/backend/process/supervisor.ts pythonHostFor; INFERGATE_PYTHON_HOST=node
in the server's environment keeps host.ts there). Standard
library only, Python 3.9+, one thread (plus the log guard below in direct mode). The router cannot tell it
from host.ts: same environment, same frames, same answers, same console-log lines, same exit codes
(src/protocol/messages.ts, docs/protocol.md "The Python instance host").

    WORKER_COUNT > 1, the relay:
    router --frames over a Unix socket--> this host --frames over stdin/stdout--> WORKER_COUNT workers
                                                                                 (infergate_worker.py)
    WORKER_COUNT = 1 (the default), direct mode:
    router --frames over a Unix socket--> this host, running the script itself with the worker's code

Direct mode: with one worker the relay hop buys nothing and costs a process wake-up and two pipe writes
per request (measured: ~2.9x the CPU per sequential request). The host imports infergate_worker.py and
does what its main() does (fd 1 -> the console log, fd 0 -> /dev/null, a private copy of fd 1 kept for the
HostMessage line; its logging; load_and_init(); Worker.handle() per REQUEST; SIGALRM for SCORING_TIMEOUT_MS
in this, the main, thread). The loop is the worker's serve() over many connections: every connection that
is ready is read, CANCELs collected as they arrive (_scan_cancels), then frames run in arrival order,
connection by connection in turn, until FLUSH_AFTER_S is spent; the answers leave (one write per
connection) and what came meanwhile is read before the next frame runs, so a request cancelled while it
waited never runs. Streams are reassembled as the relay does. What differs from the relay: a script that
ends the process (os._exit, a crash in C code, SIGKILL) ends the instance at once: its connections close,
nothing answers 502 for the requests in flight (the router fails them), and the backend restarts the
instance; a SIGTERM/SIGINT arriving during init() or run() runs its handler there (it only logs and marks
what was read so far; the loop does the rest when the script returns). A request that runs longer than the
5 s grace delays the exit as long (the relay kills its worker after 2 more seconds). The relay is kept for
WORKER_COUNT > 1, and with one worker when INFERGATE_PYTHON_HOST_RELAY is set (tests and comparisons).

Environment: INFERGATE_SOCKET (a Unix socket path: the folder is bind-mounted into the container; a tcp://
value is refused), or INFERGATE_LISTEN / `--listen tcp:HOST:PORT` (a pod on a Kubernetes compute: the
framed protocol over TCP, docs/kubernetes.md), INFERGATE_INSTANCE_ID, AZUREML_ENTRY_SCRIPT, AML_APP_ROOT, AZUREML_MODEL_DIR, WORKER_COUNT,
SCORING_TIMEOUT_MS, plus whatever the worker and the script read (passed on to the workers unchanged).
The workers run under this interpreter (sys.executable): the image's Python is the environment's Python.

Messages to the backend: there is no IPC channel, so the HostMessage goes to stdout as ONE line,
`INFERGATE_HOST {"type":"ready","pid":N}` once every worker reported a successful init() (direct mode:
once init() returned) and the socket is listening, or `INFERGATE_HOST {"type":"init-failed","code":...,"message":...}` (then exit 3). Nothing
else is ever written to stdout by this process; log lines go to stderr, as host.ts writes them.
Exit codes: 0 after SIGTERM/SIGINT, 1 when a worker died (its in-flight requests got 502) or on an
internal error, 2 for an unusable environment, 3 after init-failed; in direct mode whatever the script
ends the process with.

The relay (the hot path) never decodes a request: per frame it reads the 9-byte header (length, id,
type), overwrites the id in place with one from the chosen worker's id space (IdAllocator's rule: 1..2^32-1,
wrapping, never an id still pending on that worker; 0 is the workers' init report) and queues the frame;
a worker's RESPONSE gets the router's id back the same way and is queued to the connection it came from.
Frames queued during one turn of the loop leave in one write per connection or pipe (joined; a backlog
goes out with writev). Nothing is logged per request.

REQUEST_STREAM + BODY frames are reassembled into the REQUEST frame they stand for (the workers only ever
see REQUEST). CANCEL: a stream still arriving is dropped; otherwise the CANCEL is passed to the worker
holding the request, in its id space, and the entry is marked cancelled; the worker echoes the CANCEL when
it skipped the request (the id is free again), or answers it (the answer is dropped here).

LIMITS (several routers: docs/router-scale.md) sets maxConcurrent + maxQueued; from then on a scoring
request beyond them is answered BUSY (FULL) and never run (admit_direct, admit_relay).

Backpressure, all buffers bounded: routers are not read while every live worker has more than
WORKER_HIGH_WATER bytes waiting for its stdin; a connection is not read while more than CONN_HIGH_WATER
bytes of answers wait for it; workers' stdout is not read while any connection has more than
CONN_MAX_WAITING bytes waiting (the workers then block on their own output and stop reading requests,
which fills their stdin and stops the routers).

Failure and shutdown, as host.ts: a worker that dies fails its in-flight requests with INSTANCE_ERROR 502
and the host shuts down with exit 1 (the other requests get the grace period); SIGTERM/SIGINT stop
accepting, give in-flight requests up to 5 s (new REQUESTs meanwhile get INSTANCE_ERROR 503), half-close
the connections (1 s for the routers to close), close the workers' stdin (SIGKILL after 2 s), exit 0.
Console log: stderr, the host's and every worker's (they inherit it), is the instance's console log. With
INFERGATE_LOG_SOCKET set (the docker backend: a Unix socket in the mounted socket folder, where the server
listens), the process started is a small log supervisor (log_supervisor): it forks the host with fd 2 on a
pipe, relays the pipe to that socket, passes SIGTERM/SIGINT on, and exits with the host's exit code once
the host is gone and the pipe is drained. So the log does not pass through the container engine's logging
(dockerd and the shim cost more CPU per log line than the scoring itself: a 2.7x throughput loss on Azure's
model-1, which logs two lines per request), the request path never pays for it, and a script that kills
its own process (os._exit at import) still has its last words in the log. While the socket is
unreachable (a server restarting) the lines go to the original stderr, the container's own log, and a new
connection is tried at most once a second.
Without a parent: in a container this file is started as PID 1. PID 1 then only forks the host and
stays a minimal init (stay_init_if_pid_1: forwards SIGTERM/SIGINT, reaps orphans, exits with the host's
code), because a worker whose parent is PID 1 believes its host is gone. The host installs its signal
handlers explicitly and reaps every child with waitpid. PR_SET_PDEATHSIG is not used: when PID 1 ends,
the kernel ends everything else in the container.
"""

import fcntl
import json
import os
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import deque

WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "infergate_worker.py")
HOST_MESSAGE_PREFIX = "INFERGATE_HOST "  # src/protocol/messages.ts

FRAME_REQUEST = 1
FRAME_RESPONSE = 2
FRAME_CANCEL = 3
FRAME_REQUEST_STREAM = 4
FRAME_BODY = 5
FRAME_INSTANCE_ERROR = 6
FRAME_LIMITS = 7  # instance admission (docs/router-scale.md): the routers' request settings
FRAME_BUSY = 8  # ... and the answer to a request beyond them (not run)
BUSY_FULL = 1
BODY_LAST = 1
HEADER_BYTES = 9
BODY_HEADER_BYTES = 10
MAX_ID = 0xFFFFFFFF
INIT_ID = 0

GRACE_S = 5.0
CLOSE_WAIT_S = 1.0
KILL_AFTER_S = 2.0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2
EXIT_INIT_FAILED = 3

READ_SIZE = 1 << 18
# Bounds of what waits in this process (see the header): big enough that a few large bodies pass without
# stalling, small enough that a peer which stops reading costs little memory.
WORKER_HIGH_WATER = 1 << 20
CONN_HIGH_WATER = 1 << 20
CONN_MAX_WAITING = 16 << 20
WRITEV_MAX = 64  # buffers per writev(); IOV_MAX is 1024 on Linux
# Direct mode: answers are held back at most this long before they are written (infergate_worker.py
# FLUSH_AFTER_S, where it was measured; the same trade-off).
FLUSH_AFTER_S = 0.0005

_HEAD = struct.Struct(">IIB")  # length, id, type
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_RESPONSE_HEAD = struct.Struct(">IIBHH")  # length, id, type, status, headerCount


# --- Log lines in azmlinfsrv's format (src/protocol/log.ts), to stderr. ----------------------------------
def _line(level, logger, message):
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now))
    return "%s,%03d %s [%d] %s - %s\n" % (stamp, int(now * 1000) % 1000, level, os.getpid(), logger, message)


def log(level, logger, message):
    sys.stderr.write(_line(level, logger, message))
    sys.stderr.flush()


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def raw_log(level, logger, message):
    """log() for a signal handler: one os.write, never sys.stderr (the handler may have interrupted a write
    to it, and its buffer is not reentrant)."""
    _write_all(2, _line(level, logger, message).encode())


# fd 1 until the script runs in this process (direct mode): then a private copy, fd 1 being the console log.
_message_fd = 1


def send_message(msg):
    """The HostMessage as the one stdout line the backend looks for."""
    sys.stdout.flush()
    _write_all(_message_fd, (HOST_MESSAGE_PREFIX + json.dumps(msg, separators=(",", ":")) + "\n").encode())


# --- Frames the host makes itself. --------------------------------------------------------------------------
def _message_body(message):
    """{"message": "..."} exactly as azmlinfsrv (and scorer.ts messageBody) writes it."""
    return json.dumps({"message": message}).encode()


def _header(name, value):
    k = name.encode("latin-1")
    v = value.encode("utf-8")
    return _U16.pack(len(k)) + k + _U16.pack(len(v)) + v


_H_JSON = _header("content-type", "application/json")
SHUTTING_DOWN_BODY = _message_body("The instance is shutting down.")
NO_WORKER_BODY = _message_body("No Python worker is running.")


def instance_error_frame(rid, status, body):
    """An INSTANCE_ERROR frame: the host's own answer because the instance failed (docs/protocol.md)."""
    # length counts id, type, status and headerCount (9 bytes), then the header and the body
    return _RESPONSE_HEAD.pack(9 + len(_H_JSON) + len(body), rid, FRAME_INSTANCE_ERROR, status, 1) + _H_JSON + body


def cancel_frame(rid):
    return _HEAD.pack(HEADER_BYTES - 4, rid, FRAME_CANCEL)


# --- instance admission (docs/router-scale.md, docs/protocol.md "Instance admission") ---------------------
_LIMITS = struct.Struct(">III")  # maxConcurrent, maxQueued, maxQueueWaitMs, after the frame's head
_LIMITS_LENGTH = _U32.pack(HEADER_BYTES - 4 + _LIMITS.size)  # a LIMITS frame's length field
_BUSY = struct.Struct(">IIBB")
_SCORE = b"/score"


def busy_frame(rid, reason):
    return _BUSY.pack(HEADER_BYTES - 4 + 1, rid, FRAME_BUSY, reason)


def is_scoring(buf, pos):
    """Whether the REQUEST (or REQUEST_STREAM) frame at buf[pos:] is for /score or an OIP infer: only scoring is admitted
    (the backend's liveness probes and swagger.json always pass), as in src/runtime/admission.ts."""
    at = pos + 10 + buf[pos + 9]
    if len(buf) < at + 2 + len(_SCORE):
        return False
    (url_len,) = _U16.unpack_from(buf, at)
    start = at + 2
    if url_len >= 6 and buf[start:start + 6] == _SCORE:
        return url_len == 6 or buf[start + 6] == 0x3F
    # The Open Inference Protocol's /v2/models/<m>[/versions/<v>]/infer (no-code deployments) is scoring too.
    url = bytes(buf[start:start + url_len])
    if not url.startswith(b"/v2/models/"):
        return False
    path = url.split(b"?", 1)[0]
    return len(path) > len(b"/v2/models/") + len(b"/infer") - 1 and path.endswith(b"/infer")


def parse_init_report(frame):
    """None for {"ok": true}, else (code, message); the same reading as python-pool.ts parseInitReport."""
    try:
        (count,) = _U16.unpack_from(frame, 11)
        p = 13
        for _ in range(count):
            p += 2 + _U16.unpack_from(frame, p)[0]
            p += 2 + _U16.unpack_from(frame, p)[0]
        report = json.loads(bytes(frame[p:]).decode("utf-8"))
        if report.get("ok") is True:
            return None
        code = report.get("code")
        if code not in ("UserScriptImportError", "UserScriptFunctionNotFound"):
            code = "UserScriptInitFailed"
        message = report.get("message")
        return code, message if isinstance(message, str) else "init() failed."
    except Exception as exc:  # noqa: B902 - anything unreadable is a failed init
        return "UserScriptInitFailed", "The Python worker sent an unreadable init report: %s" % exc


class InitFailure(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class Outbox:
    """Frames for one fd: pushed during a loop turn, written together at its end (writev for a backlog)."""

    __slots__ = ("turn", "chunks", "size", "waiting")

    def __init__(self):
        self.turn = []  # frames pushed since the last write
        self.chunks = deque()  # joined batches not (fully) written yet
        self.size = 0  # bytes in both, not yet written
        self.waiting = False  # the fd was full: write again when it is writable

    def push(self, frame):
        self.turn.append(frame)
        self.size += len(frame)

    def write(self, fd):
        """Writes what the fd takes without blocking. Raises OSError when the peer is gone."""
        turn = self.turn
        chunks = self.chunks
        if turn:
            chunks.append(turn[0] if len(turn) == 1 else b"".join(turn))
            self.turn = []
        while chunks:
            try:
                if len(chunks) == 1:
                    offered = len(chunks[0])
                    n = os.write(fd, chunks[0])
                else:
                    bufs = [chunks[i] for i in range(min(len(chunks), WRITEV_MAX))]
                    offered = sum(len(b) for b in bufs)
                    n = os.writev(fd, bufs)
            except BlockingIOError:
                self.waiting = True
                return
            self.size -= n
            left = n
            while left:
                head = chunks[0]
                if left >= len(head):
                    left -= len(head)
                    chunks.popleft()
                else:
                    chunks[0] = memoryview(head)[left:]
                    left = 0
            if n < offered:
                self.waiting = True  # the kernel buffer is full: another try now would only fail
                return
        self.waiting = False


class Connection:
    """One framed connection from a router."""

    __slots__ = ("sock", "fd", "buf", "out", "streams", "closed", "events", "ending", "pos", "cancelled", "scanned",
                 "limit", "queued", "need")

    def __init__(self, sock):
        self.sock = sock
        self.fd = sock.fileno()
        self.buf = bytearray()
        self.out = Outbox()
        self.streams = {}  # id -> the REQUEST frame being reassembled (bytearray)
        self.closed = False
        self.events = 0  # what the selector watches for it
        self.ending = False  # half-closed by us at shutdown: waiting for the router to close
        # Direct mode only (the relay consumes buf whole at every read):
        self.pos = 0  # offset in buf of the first frame not run yet
        self.cancelled = set()  # ids whose CANCEL is in buf ahead of the frame not run yet (the worker's rule)
        self.scanned = 0  # offset in buf of the first frame not yet looked at for CANCELs
        self.limit = 0  # offset in buf where frames read after SIGTERM begin (they get 503)
        self.queued = False  # in Host.queue: it may hold frames not run yet
        self.need = READ_SIZE  # bytes to ask recv() for (a big frame's remainder in one go)


class Worker:
    __slots__ = ("proc", "pid", "stdin_fd", "stdout_fd", "buf", "out", "pending", "next_id", "initialized",
                 "exited", "eof", "status", "in_events", "out_events", "stdin_closed")

    def __init__(self, proc):
        self.proc = proc
        self.pid = proc.pid
        self.stdin_fd = proc.stdin.fileno()
        self.stdout_fd = proc.stdout.fileno()
        os.set_blocking(self.stdin_fd, False)
        os.set_blocking(self.stdout_fd, False)
        self.buf = bytearray()
        self.out = Outbox()
        self.pending = {}  # worker id -> [connection or None once cancelled, the router's id]
        self.next_id = 1
        self.initialized = False
        self.exited = False
        self.eof = False
        self.status = None
        self.in_events = 0
        self.out_events = 0
        self.stdin_closed = False


STARTING, SERVING, DRAINING, CLOSING, STOPPING = range(5)


class ConfigError(Exception):
    pass


def _number(text):
    """Node's Number() for the strings that matter here: None unless a whole number."""
    try:
        value = float(text)
    except ValueError:
        return None
    if text.strip() == "" or value != value or value in (float("inf"), float("-inf")) or not value.is_integer():
        return None
    return int(value)


def parse_listen(value):
    """`tcp:HOST:PORT` (a pod on a Kubernetes compute: routers in the cluster connect over TCP) -> (host, port)."""
    if not value.startswith("tcp:") or value.count(":") < 2:
        raise ConfigError("--listen '%s' is not tcp:HOST:PORT." % value)
    host, _, port = value[4:].rpartition(":")
    number = _number(port)
    if not host or number is None or not 0 < number < 65536:
        raise ConfigError("--listen '%s' is not tcp:HOST:PORT (a port from 1 to 65535)." % value)
    return host.strip("[]"), number


def listen_arg(argv):
    """The value of `--listen X` or `--listen=X` on the command line, else None."""
    for i, a in enumerate(argv):
        if a == "--listen" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--listen="):
            return a[len("--listen="):]
    return None


def open_tcp_listener(host, port):
    """The TCP listener of `--listen tcp:HOST:PORT`; opened only once init() succeeded, so a TCP connect
    is the pod's readiness, as the Unix socket's existence is locally."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(511)
    return listener


def read_config(env, argv=None):
    listen = env.get("INFERGATE_LISTEN") or listen_arg(sys.argv[1:] if argv is None else argv)
    tcp = parse_listen(listen) if listen else None
    sock = env.get("INFERGATE_SOCKET")
    if tcp is not None:
        sock = None
    elif not sock:
        raise ConfigError("INFERGATE_SOCKET is not set: the host needs a socket path to listen on.")
    if sock is not None and sock.startswith("tcp://"):
        raise ConfigError("INFERGATE_SOCKET '%s' is not a Unix socket path: the Python instance host listens on "
                          "a Unix socket only." % sock)
    app_root = os.path.abspath(env.get("AML_APP_ROOT") or os.getcwd())
    entry = env.get("AZUREML_ENTRY_SCRIPT")
    if not entry:
        raise ConfigError("AZUREML_ENTRY_SCRIPT is not set: the host needs the scoring script to run.")
    wc = env.get("WORKER_COUNT", "1")
    worker_count = _number(wc)
    if worker_count is None or worker_count <= 0:
        raise ConfigError("Specified worker count '%s' is invalid. Please specify a worker count greater than zero." % wc)
    st = env.get("SCORING_TIMEOUT_MS", "3600000")
    timeout_ms = _number(st)
    if timeout_ms is None or timeout_ms < 0:
        raise ConfigError("SCORING_TIMEOUT_MS '%s' is invalid. Please specify a whole number of milliseconds." % st)
    return {
        "socket": os.path.abspath(sock) if sock else None,
        "tcp": tcp,
        "instance_id": env.get("INFERGATE_INSTANCE_ID") or "local",
        # Relative to the app root, as azmlinfsrv resolves it (contract section 5.2).
        "entry": os.path.abspath(os.path.join(app_root, entry)),
        "app_root": app_root,
        "model_dir": env.get("AZUREML_MODEL_DIR"),
        "worker_count": worker_count,
        "python": sys.executable or "python3",
        "timeout_ms": timeout_ms,
    }


def _how(status):
    """'exit code N' or 'signal SIGKILL', as host.ts words a worker's end."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return "signal %s" % signal.Signals(sig).name
        except ValueError:
            return "signal %d" % sig
    return "exit code %d" % os.WEXITSTATUS(status)


def _noop(signum, frame):
    pass  # the wakeup fd tells the loop; a handler must exist for the C-level handler to write it


def _watch(sel, fd, events, want, data):
    """Makes the selector watch `fd` for `want` (0: not at all) where it watched `events`; returns `want`."""
    if want != events:
        if events == 0:
            sel.register(fd, want, data)
        elif want == 0:
            sel.unregister(fd)
        else:
            sel.modify(fd, want, data)
    return want


class Host:
    # Instance admission: maxConcurrent + maxQueued from the last LIMITS frame (0: none, every request runs).
    admit_limit = 0

    def __init__(self, cfg):
        self.cfg = cfg
        self.sel = selectors.DefaultSelector()
        self.workers = []
        self.by_pid = {}
        self.conns = set()
        self.listener = None
        self.phase = STARTING
        self.exit_code = 0
        self.deadline = None
        self.init_failure = None
        self.fatal = False
        self.workers_congested = False
        self.reading_workers = True
        self.then = None  # what to do once every worker is gone (STOPPING)
        # Direct mode (WORKER_COUNT=1): the script runs here, no workers (see the header).
        self.direct = cfg["worker_count"] == 1 and not os.environ.get("INFERGATE_PYTHON_HOST_RELAY")
        self.scorer = None  # infergate_worker.Worker
        self.queue = deque()  # connections that may hold frames not run yet, in turn
        self.spin = False  # the last turn stopped running frames on its time budget: do not block in select
        self.in_run = False  # Worker.handle() is on the stack (what a signal handler may find)
        self.announced = False  # "Shutting down" logged and Connection.limit set (by the signal handler)
        self.scratch = bytearray(READ_SIZE) if self.direct else None
        self.scratch_view = memoryview(self.scratch) if self.direct else None

    # --- start-up ------------------------------------------------------------------------------------------
    def start(self):
        cfg = self.cfg
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        if self.direct:
            # No workers to reap (and waitpid(-1) would steal the exit status of the script's own children).
            for s in (signal.SIGTERM, signal.SIGINT):
                signal.signal(s, self.on_stop_signal)
        else:
            for s in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(s, _noop)
        self.wakeup_fd = r
        self.sel.register(r, selectors.EVENT_READ, ("signal", None))
        try:
            if not os.path.isdir(cfg["app_root"]):
                raise InitFailure("UserScriptImportError", "The code folder (AML_APP_ROOT) %s does not exist." % cfg["app_root"])
            if not os.path.exists(cfg["entry"]):
                raise InitFailure("UserScriptImportError", "User script at %s does not exist." % cfg["entry"])
            if os.path.splitext(cfg["entry"])[1].lower() != ".py":
                raise InitFailure("UserScriptImportError", "User script at %s is not a scoring script the Python instance "
                                  "host can run: expected .py (a JavaScript or TypeScript module needs the Node host)." % cfg["entry"])
            log("I", "azmlinfsrv", "Python interpreter: %s; worker script: %s" % (cfg["python"], WORKER_SCRIPT))
            log("I", "azmlinfsrv", "Scoring timeout is set to %d" % cfg["timeout_ms"])
            if self.direct:
                self.start_direct()
                return
            env = dict(os.environ)
            # Absolute paths for the workers, whatever form the backend gave.
            env.update(AML_APP_ROOT=cfg["app_root"], AZUREML_ENTRY_SCRIPT=cfg["entry"], SCORING_TIMEOUT_MS=str(cfg["timeout_ms"]))
            for _ in range(cfg["worker_count"]):
                try:
                    proc = subprocess.Popen([cfg["python"], "-u", WORKER_SCRIPT], cwd=cfg["app_root"], env=env,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
                except OSError as exc:
                    raise InitFailure("UserScriptImportError",
                                      "Could not start the Python interpreter '%s': %s" % (cfg["python"], exc))
                worker = Worker(proc)
                self.workers.append(worker)
                self.by_pid[worker.pid] = worker
                self.sel.register(worker.stdout_fd, selectors.EVENT_READ, ("out", worker))
                worker.out_events = selectors.EVENT_READ
        except InitFailure as failure:
            self.init_failed(failure)

    def start_direct(self):
        """Loads the script into this process with the worker's own code, as a worker would (its main())."""
        global _message_fd
        cfg = self.cfg
        import infergate_worker  # beside this file: sys.path[0] while we run as a script

        in_fd, _message_fd = infergate_worker.take_frame_channel()  # fd 1 -> the console log, before user code
        os.close(in_fd)
        infergate_worker.isolate_sys_path()
        os.environ.update(AML_APP_ROOT=cfg["app_root"], AZUREML_ENTRY_SCRIPT=cfg["entry"],
                          SCORING_TIMEOUT_MS=str(cfg["timeout_ms"]))
        os.chdir(cfg["app_root"])
        infergate_worker.configure_logging()
        log("I", "azmlinfsrv", "WORKER_COUNT=1: scoring in the instance host's own process (pid %d), no worker."
            % os.getpid())
        try:
            script = infergate_worker.load_and_init()
        except infergate_worker.InitFailure as failure:
            self.init_failed(InitFailure(failure.code, failure.message))
            return
        self.iw = infergate_worker
        self.scorer = infergate_worker.Worker(script, cfg["timeout_ms"])  # installs the SIGALRM handler
        self.ready()

    def on_stop_signal(self, signum, frame):
        """Direct mode's SIGTERM/SIGINT handler. It runs in the main thread, maybe inside init() or run():
        the loop cannot see the signal until the script returns, so what must happen at once happens here."""
        name = signal.Signals(signum).name
        if self.phase == STARTING:
            # Still in init(): nothing is served yet (the relay kills its workers and exits here too).
            raw_log("I", "azmlinfsrv", "Shutting down (%s); 0 request(s) in flight." % name)
            os._exit(0)
        if self.phase == SERVING and not self.announced:
            # Frames read from now on are answered 503; the loop's shutdown() does the rest once run() returns.
            self.announce(name, raw_log)

    def announce(self, reason, logger):
        self.announced = True
        for c in self.conns:
            c.limit = len(c.buf)
        logger("I", "azmlinfsrv", "Shutting down (%s); %d request(s) in flight." % (reason, self.inflight()))

    def init_failed(self, failure):
        """Stops the workers; then (STOPPING's `then`) logs, reports init-failed and exits 3."""
        if self.init_failure is not None:
            return
        self.init_failure = failure

        def report():
            log("E", "azmlinfsrv", "init-failed %s: %s" % (failure.code, failure.message.rstrip()))
            send_message({"type": "init-failed", "code": failure.code, "message": failure.message})
            self.exit(EXIT_INIT_FAILED)

        self.stop_workers(report)

    def on_init_report(self, worker, frame, rid):
        if rid != INIT_ID:
            failure = ("UserScriptInitFailed", "Python worker %d answered before reporting init." % worker.pid)
        else:
            failure = parse_init_report(frame)
        worker.initialized = True  # reported, either way
        if failure is not None:
            self.init_failed(InitFailure(*failure))
            return
        if self.phase == STARTING and all(w.initialized for w in self.workers) and self.init_failure is None:
            self.ready()

    def ready(self):
        for w in self.workers:
            log("I", "azmlinfsrv", "Worker with pid %d ready for serving traffic" % w.pid)
        if self.direct:
            log("I", "azmlinfsrv", "Worker with pid %d ready for serving traffic" % os.getpid())
        if self.cfg["tcp"] is not None:
            host, port = self.cfg["tcp"]
            self.listen_on(open_tcp_listener(host, port), "tcp:%s:%d" % (host, port))
            return
        path = self.cfg["socket"]
        # A socket file left by a previous instance that crashed would make bind() fail with EADDRINUSE.
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        # The router connects from outside the container, maybe as another user: the folder the socket is
        # in is what keeps others out, not the socket's own mode.
        os.chmod(path, 0o666)
        listener.listen(511)
        self.listen_on(listener, path)

    def listen_on(self, listener, where):
        listener.setblocking(False)
        self.listener = listener
        self.sel.register(listener, selectors.EVENT_READ, ("accept", None))
        self.phase = SERVING
        log("I", "azmlinfsrv", "Listening on %s" % where)
        send_message({"type": "ready", "pid": os.getpid()})

    # --- the loop ------------------------------------------------------------------------------------------
    def run(self):
        sel = self.sel
        while True:
            timeout = None
            if self.spin:
                timeout = 0  # frames wait to be run: see what else came in, then go on with them
            elif self.deadline is not None:
                timeout = max(0.0, min(self.deadline - time.monotonic(), 0.05))
            for key, mask in sel.select(timeout):
                kind, obj = key.data
                if kind == "conn":
                    if obj.closed:
                        continue  # closed earlier in this batch
                    if mask & selectors.EVENT_READ:
                        if self.direct:
                            self.read_conn_direct(obj)
                        else:
                            self.read_conn(obj)
                    if mask & selectors.EVENT_WRITE and not obj.closed:
                        obj.out.waiting = False
                elif kind == "out":
                    self.read_worker(obj)
                elif kind == "in":
                    obj.out.waiting = False
                elif kind == "accept":
                    self.accept()
                else:
                    self.on_signals()
            if self.queue and self.phase <= CLOSING:
                self.run_queued()
            else:
                self.spin = False
            self.flush()
            if self.phase != SERVING:
                self.progress()

    def flush(self):
        """One write per peer per turn, then what the selector watches (backpressure)."""
        for w in self.workers:
            out = w.out
            if out.size and not out.waiting and not w.stdin_closed:
                try:
                    out.write(w.stdin_fd)
                except OSError:
                    out.turn = []  # EPIPE: the worker died; its exit does the rest
                    out.chunks.clear()
                    out.size = 0
        max_waiting = 0
        for c in list(self.conns):
            out = c.out
            if out.size and not out.waiting:
                try:
                    out.write(c.fd)
                except OSError:
                    self.close_conn(c)
                    continue
            if out.size > max_waiting:
                max_waiting = out.size
        # Direct mode: a connection skipped because its answers backed up may have drained in this one
        # write, which leaves no write event to wake the loop: do not block in select while it can go on.
        if self.queue and not self.spin and self.phase <= CLOSING:
            for c in self.queue:
                if not c.closed and c.out.size <= CONN_HIGH_WATER:
                    self.spin = True
                    break
        live = False
        congested = True
        for w in self.workers:
            if w.exited:
                continue
            live = True
            if w.out.size <= WORKER_HIGH_WATER:
                congested = False
        self.workers_congested = live and congested
        self.reading_workers = max_waiting <= CONN_MAX_WAITING
        sel = self.sel
        for w in self.workers:
            if w.exited:
                continue
            w.in_events = _watch(sel, w.stdin_fd, w.in_events,
                                 selectors.EVENT_WRITE if (w.out.waiting and not w.stdin_closed) else 0, ("in", w))
            w.out_events = _watch(sel, w.stdout_fd, w.out_events,
                                  selectors.EVENT_READ if (self.reading_workers and not w.eof) else 0, ("out", w))
        reading = not self.workers_congested
        for c in self.conns:
            want = 0
            # Direct mode: frames not run yet are bounded too (c.pos stays 0 in the relay).
            if reading and c.out.size <= CONN_HIGH_WATER and (not c.queued or len(c.buf) - c.pos <= CONN_HIGH_WATER):
                want = selectors.EVENT_READ
            if c.out.waiting:
                want |= selectors.EVENT_WRITE
            c.events = _watch(sel, c.fd, c.events, want, ("conn", c))

    def accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: the connection waits in the backlog
                log("E", "azmlinfsrv", "Server error: %s" % exc)
                return
            sock.setblocking(False)
            if self.cfg["tcp"] is not None:
                # Frames are written whole and batched already: Nagle would only hold the last one back.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = Connection(sock)
            c.events = selectors.EVENT_READ
            self.sel.register(c.fd, c.events, ("conn", c))
            self.conns.add(c)

    def close_conn(self, c):
        if c.closed:
            return
        c.closed = True
        self.conns.discard(c)
        if c.events:
            self.sel.unregister(c.fd)
            c.events = 0
        c.sock.close()
        c.streams.clear()

    def read_conn(self, c):
        buf = c.buf
        need = READ_SIZE
        if len(buf) >= 4:  # a big frame's remainder in one read
            need = max(READ_SIZE, _U32.unpack_from(buf, 0)[0] + 4 - len(buf))
        try:
            data = c.sock.recv(need)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close_conn(c)
            return
        if not data:
            if not c.ending and c.out.size:
                try:
                    c.out.write(c.fd)  # what is queued still goes, as Node's allowHalfOpen=false does
                except OSError:
                    pass
            self.close_conn(c)
            return
        buf += data
        n = len(buf)
        pos = 0
        unpack = _HEAD.unpack_from
        while n - pos >= HEADER_BYTES:
            length, rid, kind = unpack(buf, pos)
            end = pos + 4 + length if length >= HEADER_BYTES - 4 else pos + HEADER_BYTES
            if end > n:
                break
            if kind == FRAME_REQUEST:
                self.request(c, buf[pos:end], rid)
            elif kind == FRAME_LIMITS:
                self.set_limits(buf, pos)
            elif kind == FRAME_REQUEST_STREAM:
                c.streams[rid] = buf[pos:end]
            elif kind == FRAME_BODY:
                whole = c.streams.get(rid)
                if whole is not None:  # else cancelled, or never started: nothing to add to
                    whole += buf[pos + BODY_HEADER_BYTES:end]
                    if end > pos + BODY_HEADER_BYTES - 1 and buf[pos + BODY_HEADER_BYTES - 1] & BODY_LAST:
                        del c.streams[rid]
                        _U32.pack_into(whole, 0, len(whole) - 4)
                        whole[HEADER_BYTES - 1] = FRAME_REQUEST
                        self.request(c, whole, rid)
            elif kind == FRAME_CANCEL:
                # A streamed request still arriving is dropped with its parts; a whole one is the worker's
                # to drop if it has not started it.
                if c.streams.pop(rid, None) is None:
                    self.cancel(c, rid)
            # RESPONSE frames have no meaning in this direction.
            pos = end
        if pos:
            del buf[:pos]  # CPython trims the front of a bytearray in O(1)

    # --- direct mode (WORKER_COUNT=1): the worker's serve() over many connections -------------------------
    def read_conn_direct(self, c):
        """Reads what came; the frames are run by run_queued() after every ready peer was read this turn."""
        try:
            if c.need <= READ_SIZE:
                # Into one reused buffer: recv(256 KiB) would mmap, mremap and munmap a fresh bytes object
                # on every read (3 system calls per request on a sequential connection).
                n = c.sock.recv_into(self.scratch)
                data = self.scratch_view[:n]
            else:
                data = c.sock.recv(c.need)  # a big frame's remainder: that cost is small beside its size
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close_conn(c)
            return
        if not data:
            # The router is gone: its frames not run yet have no one to answer (the relay ran them anyway).
            if not c.ending and c.out.size:
                try:
                    c.out.write(c.fd)
                except OSError:
                    pass
            self.close_conn(c)
            return
        buf = c.buf
        fresh = len(buf)
        buf += data
        # CANCELs are collected as they arrive, so a request cancelled while it waited is never run.
        c.scanned = self.iw._scan_cancels(buf, c.scanned, c.cancelled, fresh)
        if self.admit_limit or buf.find(_LIMITS_LENGTH, max(fresh - (HEADER_BYTES - 1), 0)) >= 0:
            self.admit_direct(c, fresh)
        if not c.queued:
            c.queued = True
            self.queue.append(c)

    def run_queued(self):
        """Runs waiting frames, connection by connection in turn, until all are run or FLUSH_AFTER_S is spent
        (then the loop writes the answers and reads what came meanwhile, CANCELs included, before going on:
        the worker's serve() does the same after a slow run())."""
        queue = self.queue
        t0 = time.perf_counter()
        spin = False
        for _ in range(len(queue)):
            c = queue.popleft()
            if c.closed:
                c.queued = False
                continue
            if c.out.size > CONN_HIGH_WATER:
                queue.append(c)  # the router is not reading: its frames wait (EVENT_WRITE wakes us)
                continue
            stopped = self.walk(c, t0)
            buf = c.buf
            pos = c.pos
            if pos:
                del buf[:pos]  # CPython trims the front of a bytearray in O(1)
                c.scanned = max(c.scanned - pos, 0)
                c.limit -= pos
                c.pos = 0
            if stopped:
                queue.append(c)
                if stopped == 1:
                    spin = True
                    break
            else:
                c.queued = False
                # Only a partial frame left: read the rest of a big one in one go.
                c.need = READ_SIZE
                if len(buf) >= 4:
                    c.need = max(READ_SIZE, _U32.unpack_from(buf, 0)[0] + 4 - len(buf))
        self.spin = spin

    def walk(self, c, t0):
        """Runs c's whole frames from c.pos; 0 when none is left, 1 out of time, 2 the answers back up."""
        buf = c.buf
        n = len(buf)
        pos = c.pos
        unpack = _HEAD.unpack_from
        cancelled = c.cancelled
        out = c.out
        status = 0
        while n - pos >= HEADER_BYTES:
            length, rid, kind = unpack(buf, pos)
            end = pos + 4 + length if length >= HEADER_BYTES - 4 else pos + HEADER_BYTES
            if end > n:
                break
            whole = None
            if kind == FRAME_REQUEST:
                whole = buf
            elif kind == FRAME_BODY:
                part = c.streams.get(rid)
                if part is not None:  # else cancelled, or never started: nothing to add to
                    part += buf[pos + BODY_HEADER_BYTES:end]
                    if end > pos + BODY_HEADER_BYTES - 1 and buf[pos + BODY_HEADER_BYTES - 1] & BODY_LAST:
                        del c.streams[rid]
                        _U32.pack_into(part, 0, len(part) - 4)
                        part[HEADER_BYTES - 1] = FRAME_REQUEST
                        whole = part
            elif kind == FRAME_REQUEST_STREAM:
                c.streams[rid] = buf[pos:end]
            elif kind == FRAME_CANCEL:
                # Its request came earlier: answered, skipped, or a stream still arriving (dropped here).
                cancelled.discard(rid)
                c.streams.pop(rid, None)
            if whole is not None:
                if cancelled and rid in cancelled:
                    cancelled.discard(rid)  # dropped unrun; the router expects no answer
                elif self.announced and pos >= c.limit:
                    out.push(instance_error_frame(rid, 503, SHUTTING_DOWN_BODY))
                else:
                    c.pos = end  # running, no longer waiting (what a SIGTERM during run() counts)
                    if whole is buf:
                        self.run_one(out, rid, buf, pos, end)
                    else:
                        self.run_one(out, rid, whole, 0, len(whole))
                    pos = end
                    if out.size > CONN_HIGH_WATER:
                        status = 2
                        break
                    if time.perf_counter() - t0 > FLUSH_AFTER_S:
                        status = 1
                        break
                    continue
            # RESPONSE frames have no meaning in this direction.
            pos = end
        c.pos = pos
        return status

    def run_one(self, out, rid, buf, pos, end):
        self.in_run = True
        try:
            frame = self.scorer.handle(buf, pos, end)
        except BaseException as exc:  # noqa: B902 - e.g. a late SIGALRM or sys.exit() in run(): as the worker
            iw = self.iw
            iw.logger.error("Internal error while handling a request: %s", iw._user_traceback(exc).rstrip())
            frame = iw.response_frame(rid, 500, [iw.H_JSON], iw.INTERNAL_ERROR_BODY)
        finally:
            self.in_run = False
        out.push(frame)

    def queued(self):
        """Requests read and not run yet (a CANCEL scan's cost: only at shutdown)."""
        count = 0
        unpack = _HEAD.unpack_from
        for c in self.conns:
            buf = c.buf
            n = len(buf)
            if self.announced:
                n = min(n, max(c.limit, 0))
            pos = c.pos
            while n - pos >= HEADER_BYTES:
                length, rid, kind = unpack(buf, pos)
                end = pos + 4 + length if length >= HEADER_BYTES - 4 else pos + HEADER_BYTES
                if end > n:
                    break
                if kind == FRAME_REQUEST or (kind == FRAME_BODY and rid in c.streams and end > pos + BODY_HEADER_BYTES - 1
                                             and buf[pos + BODY_HEADER_BYTES - 1] & BODY_LAST):
                    if rid not in c.cancelled:
                        count += 1
                pos = end
        return count

    def request(self, c, frame, rid):
        """Relays one REQUEST frame (ours: a copy) to the least busy worker, in that worker's id space."""
        if self.phase != SERVING:
            c.out.push(instance_error_frame(rid, 503, SHUTTING_DOWN_BODY))
            return
        if self.admit_limit and not self.admit_relay(c, frame, rid):
            return
        best = None
        for w in self.workers:
            if w.exited:
                continue
            if best is None:
                best = w
                continue
            b_full = best.out.size > WORKER_HIGH_WATER
            w_full = w.out.size > WORKER_HIGH_WATER
            if (b_full and not w_full) or (b_full == w_full and len(w.pending) < len(best.pending)):
                best = w
        if best is None:
            c.out.push(instance_error_frame(rid, 503, NO_WORKER_BODY))
            return
        pending = best.pending
        hid = best.next_id
        while hid in pending:
            hid = 1 if hid >= MAX_ID else hid + 1
        best.next_id = 1 if hid >= MAX_ID else hid + 1
        pending[hid] = [c, rid]
        _U32.pack_into(frame, 4, hid)
        best.out.push(frame)

    # --- instance admission: LIMITS in, BUSY out (docs/router-scale.md) ------------------------------------
    def set_limits(self, buf, pos):
        max_concurrent, max_queued, _wait_ms = _LIMITS.unpack_from(buf, pos + HEADER_BYTES)
        self.admit_limit = max_concurrent + max_queued if max_concurrent > 0 else 0

    def admit_direct(self, c, fresh):
        """Direct mode, after a read into c.buf (buf[fresh:] new): LIMITS frames that came are applied, and
        each scoring request that came is answered BUSY (FULL) at once when maxConcurrent + maxQueued requests
        already wait, here and on the other connections. Nothing runs while the loop reads, so the requests
        not run yet are all the instance holds; a refused one is skipped by walk() as a cancelled one is.
        max_queue_wait_ms is not applied here (the router's deadline and CANCEL still are), and a streamed
        request (reassembled by walk(), not here) is not counted."""
        unpack = _HEAD.unpack_from
        buf = c.buf
        n = len(buf)
        waiting = 0
        if self.admit_limit:
            for o in self.conns:
                if o is not c and not o.closed:
                    waiting += self.waiting_in(o)
        cancelled = c.cancelled
        pos = c.pos
        while n - pos >= HEADER_BYTES:
            length, rid, kind = unpack(buf, pos)
            end = pos + 4 + length if length >= HEADER_BYTES - 4 else pos + HEADER_BYTES
            if end > n:
                break
            if kind == FRAME_LIMITS:
                if end > fresh:
                    self.set_limits(buf, pos)
            elif kind == FRAME_REQUEST and self.admit_limit and rid not in cancelled and is_scoring(buf, pos):
                if end > fresh and waiting >= self.admit_limit:
                    cancelled.add(rid)
                    c.out.push(busy_frame(rid, BUSY_FULL))
                else:
                    waiting += 1
            pos = end

    def waiting_in(self, c):
        """Scoring requests of c read and not run yet (not cancelled, not refused)."""
        unpack = _HEAD.unpack_from
        buf = c.buf
        n = len(buf)
        pos = c.pos
        count = 0
        while n - pos >= HEADER_BYTES:
            length, rid, kind = unpack(buf, pos)
            end = pos + 4 + length if length >= HEADER_BYTES - 4 else pos + HEADER_BYTES
            if end > n:
                break
            if kind == FRAME_REQUEST and rid not in c.cancelled and is_scoring(buf, pos):
                count += 1
            pos = end
        return count

    def admit_relay(self, c, frame, rid):
        """The relay: False (answered BUSY) when maxConcurrent + maxQueued requests are with the workers.
        The workers run what they are given: with WORKER_COUNT above maxConcurrent more than maxConcurrent
        may run at once (docs/router-scale.md)."""
        if not self.admit_limit or not is_scoring(frame, 0):
            return True
        if sum(len(w.pending) for w in self.workers if not w.exited) < self.admit_limit:
            return True
        c.out.push(busy_frame(rid, BUSY_FULL))
        return False

    def cancel(self, c, rid):
        """A scan: CANCELs are rare and pending is bounded, while a reverse map would cost every request."""
        for w in self.workers:
            if w.exited:
                continue
            for hid, p in w.pending.items():
                if p[0] is c and p[1] == rid:
                    p[0] = None
                    w.out.push(cancel_frame(hid))
                    return

    def read_worker(self, w):
        buf = w.buf
        need = READ_SIZE
        if len(buf) >= 4:
            need = max(READ_SIZE, _U32.unpack_from(buf, 0)[0] + 4 - len(buf))
        try:
            data = os.read(w.stdout_fd, need)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if not data:
            w.eof = True
            if w.out_events:
                self.sel.unregister(w.stdout_fd)
                w.out_events = 0
            return False
        buf += data
        n = len(buf)
        pos = 0
        unpack = _HEAD.unpack_from
        pending = w.pending
        while n - pos >= HEADER_BYTES:
            length, hid, kind = unpack(buf, pos)
            end = pos + 4 + length if length >= HEADER_BYTES - 4 else pos + HEADER_BYTES
            if end > n:
                break
            if kind == FRAME_RESPONSE:
                if not w.initialized:
                    self.on_init_report(w, buf[pos:end], hid)
                else:
                    p = pending.pop(hid, None)
                    # None: answered already (502 after a crash) or never asked.
                    if p is not None:
                        c = p[0]
                        if c is not None and not c.closed:  # else cancelled, or its router went away
                            frame = buf[pos:end]
                            _U32.pack_into(frame, 4, p[1])
                            c.out.push(frame)
            elif kind == FRAME_CANCEL:
                if w.initialized:
                    pending.pop(hid, None)  # skipped unrun: the id is free again
            pos = end
        if pos:
            del buf[:pos]
        return True

    # --- children and signals ----------------------------------------------------------------------------
    def on_signals(self):
        try:
            data = os.read(self.wakeup_fd, 512)
        except BlockingIOError:
            return
        if signal.SIGCHLD in data:
            self.reap()
        for s in data:
            if s == signal.SIGTERM or s == signal.SIGINT:
                self.shutdown(0, signal.Signals(s).name)

    def reap(self):
        """Every child that ended: our workers, and orphans of the script's (as PID 1 they are ours)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            w = self.by_pid.get(pid)
            if w is not None:
                w.proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen never waits for it again
                self.worker_exited(w, status)

    def worker_exited(self, w, status):
        # Its last answers (or its init report) are in the pipe: read them before deciding anything.
        while not w.eof and self.read_worker(w):
            pass
        w.exited = True
        w.status = status
        for fd, events in ((w.stdout_fd, w.out_events), (w.stdin_fd, w.in_events)):
            if events:
                self.sel.unregister(fd)
        w.out_events = w.in_events = 0
        w.proc.stdout.close()
        if not w.stdin_closed:
            w.stdin_closed = True
            w.proc.stdin.close()
        how = _how(status)
        if not w.initialized:
            w.initialized = True
            self.init_failed(InitFailure("UserScriptInitFailed", "The Python worker exited (%s) before reporting the "
                                         "outcome of init(). See the console log." % how))
            return
        if self.phase in (STARTING, STOPPING):
            return  # start-up failures are reported by init_failed; at STOPPING exits are expected
        failed = len(w.pending)
        if failed:
            body = _message_body("The scoring worker (pid %d) exited unexpectedly (%s) while handling the request. "
                                 "Check the logs for more info." % (w.pid, how))
            for c, rid in w.pending.values():
                if c is not None and not c.closed:
                    c.out.push(instance_error_frame(rid, 502, body))
            w.pending.clear()
        log("E", "azmlinfsrv", "Python worker pid %d exited unexpectedly (%s); %d in-flight request(s) answered with 502."
            % (w.pid, how, failed))
        if not self.fatal:
            self.fatal = True
            self.shutdown(EXIT_FAILED, "Python worker pid %d exited (%s)" % (w.pid, how))

    # --- shutdown --------------------------------------------------------------------------------------------
    def inflight(self):
        if self.direct:
            return self.queued() + (1 if self.in_run else 0)
        return sum(len(w.pending) for w in self.workers)

    def shutdown(self, code, reason):
        if self.phase not in (STARTING, SERVING) or self.init_failure is not None:
            return
        if not self.announced:
            self.announce(reason, log)
        self.exit_code = code
        if self.phase == STARTING:
            # Still in init(): nothing is served yet, nothing to wait for.
            for w in self.workers:
                if not w.exited:
                    w.proc.kill()
            self.exit(code)
        self.close_listener()  # stop accepting; the socket file goes with it
        self.phase = DRAINING
        self.deadline = time.monotonic() + GRACE_S

    def close_listener(self):
        if self.listener is None:
            return
        self.sel.unregister(self.listener)
        self.listener.close()
        self.listener = None
        if self.cfg["socket"] is not None:
            try:
                os.unlink(self.cfg["socket"])
            except (OSError, TypeError):
                pass

    def progress(self):
        """Moves shutdown (or a failed start) on, once per loop turn."""
        now = time.monotonic()
        if self.phase == DRAINING:
            n = self.inflight()
            if n and now < self.deadline:
                return
            if n:
                log("W", "azmlinfsrv", "%d request(s) still in flight after %d ms are abandoned." % (n, GRACE_S * 1000))
            for c in self.conns:
                c.limit = c.pos  # direct mode: what was not run in time gets 503 now rather than running later
            self.phase = CLOSING
            self.deadline = now + CLOSE_WAIT_S
        if self.phase == CLOSING:
            for c in list(self.conns):
                if not c.ending and not c.out.size:
                    # Half-close once every answer is out (Node's end()); the router closes its side.
                    c.ending = True
                    try:
                        c.sock.shutdown(socket.SHUT_WR)
                    except OSError:
                        self.close_conn(c)
            if self.conns and now < self.deadline:
                return
            for c in list(self.conns):
                self.close_conn(c)
            code = self.exit_code

            def stopped():
                log("I", "azmlinfsrv", "Instance host stopped (exit code %d)." % code)
                self.exit(code)

            self.stop_workers(stopped)
        if self.phase == STOPPING:
            for w in self.workers:
                if not w.stdin_closed and not w.out.size:
                    w.stdin_closed = True  # end of input: the worker finishes what it read, then exits
                    if w.in_events:
                        self.sel.unregister(w.stdin_fd)
                        w.in_events = 0
                    w.proc.stdin.close()
            if all(w.exited for w in self.workers):
                self.then()
            elif now >= self.deadline:
                for w in self.workers:
                    if not w.exited:
                        w.proc.kill()
                self.deadline = now + 10.0  # SIGKILL always ends them; the loop reaps them

    def stop_workers(self, then):
        """Closes every worker's stdin once its queue is written, SIGKILL after 2 s; `then` when all are gone."""
        self.phase = STOPPING
        self.then = then
        self.deadline = time.monotonic() + KILL_AFTER_S
        self.progress()

    def exit(self, code):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def stay_init_if_pid_1():
    """As PID 1 (a container without --init), fork: the child is the host, PID 1 stays a minimal init.

    Why not serve as PID 1 itself: a worker whose parent is PID 1 takes it for init adopting an orphan
    (infergate_worker.py _die_with_parent) and exits before init(). What PID 1 must do is done here:
    SIGTERM/SIGINT are passed to the host (the kernel gives PID 1 no default actions), every child the
    namespace leaves to us is reaped, and the host's end is PID 1's end: exit code as the host's, 128+N
    for signal N, and the kernel then kills whatever is left in the container.
    """
    if os.getpid() != 1:
        return
    host_pid = os.fork()
    if host_pid == 0:
        return

    def forward(signum, frame):
        try:
            os.kill(host_pid, signum)
        except ProcessLookupError:
            pass

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(s, forward)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)  # EINTR: retried after forward() ran (PEP 475)
        except ChildProcessError:
            os._exit(EXIT_FAILED)
        if pid == host_pid:
            os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))


LOG_BATCH_S = 0.01


class LogSink:
    """The server's log socket, reconnected at most once a second; the original stderr while it is away."""

    RETRY_S = 1.0

    def __init__(self, path, fallback):
        self.path = path
        self.fallback = fallback
        self.sock = None
        self.last_try = -self.RETRY_S

    def send(self, data):
        if self.sock is None and time.monotonic() - self.last_try >= self.RETRY_S:
            self.last_try = time.monotonic()
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.path)
                self.sock = s
            except OSError:
                s.close()
        if self.sock is not None:
            try:
                self.sock.sendall(data)
                return
            except OSError:
                self.sock.close()
                self.sock = None
        try:
            _write_all(self.fallback, data)
        except OSError:
            pass


def log_supervisor(path):
    """Forks the host with fd 2 on a pipe and relays the pipe to the log socket (see the header).

    Returns in the child (the host goes on as usual); the parent never returns: it exits with the host's
    code (128+N for signal N) once the host has exited and the pipe is drained, or at most 0.5 s after the
    host's exit when something the host left behind still holds the pipe. As the container's main process
    it also reaps every orphan and passes SIGTERM/SIGINT/SIGHUP/SIGQUIT to the host.
    """
    r, w = os.pipe()
    try:
        fcntl.fcntl(w, 1031, 1 << 20)  # F_SETPIPE_SZ: room for LOG_BATCH_S of a busy script's lines
    except OSError:
        pass  # a smaller pipe only means the writers wait for us sooner
    host_pid = os.fork()
    if host_pid == 0:
        os.close(r)
        os.dup2(w, 2)
        os.close(w)
        del os.environ["INFERGATE_LOG_SOCKET"]
        return

    os.close(w)

    def forward(signum, frame):
        try:
            os.kill(host_pid, signum)
        except ProcessLookupError:
            pass

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(s, forward)
    sink = LogSink(path, 2)
    code = None
    gone_at = None
    while True:
        if select.select([r], [], [], 0.2)[0]:
            data = os.read(r, 1 << 20)
            if not data:
                break  # every writer is gone
            sink.send(data)
            # Lines come in bursts (two per request for Azure's model-1): one wake-up per LOG_BATCH_S
            # rather than one per line keeps this process's CPU off the scoring's (25% of a core at 10k
            # requests/s without it).
            if len(data) < 1 << 20 and gone_at is None:
                time.sleep(LOG_BATCH_S)
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                break
            if pid == host_pid:
                code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                gone_at = time.monotonic()
        if gone_at is not None and time.monotonic() - gone_at > 0.5:
            break
    if code is None:
        _, status = os.waitpid(host_pid, 0)
        code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    os._exit(code)


def main():
    if os.environ.get("INFERGATE_LOG_SOCKET"):
        log_supervisor(os.environ["INFERGATE_LOG_SOCKET"])  # returns in the host only
    else:
        stay_init_if_pid_1()
    return serve()


def serve():
    try:
        cfg = read_config(os.environ)
    except ConfigError as err:
        log("C", "azmlinfsrv", str(err))
        return EXIT_BAD_CONFIG
    log("I", "azmlinfsrv", "infergate instance host (azmlinfsrv-compatible), instance %s, pid %d, Python %s"
        % (cfg["instance_id"], os.getpid(), sys.version.split()[0]))
    log("I", "azmlinfsrv", "Entry script: %s" % cfg["entry"])
    log("I", "azmlinfsrv", "Code folder (AML_APP_ROOT): %s" % cfg["app_root"])
    if cfg["model_dir"] is None:
        log("W", "azmlinfsrv", "The environment variable 'AZUREML_MODEL_DIR' has not been set.")
    else:
        log("I", "azmlinfsrv", "Model directory (AZUREML_MODEL_DIR): %s" % cfg["model_dir"])
    log("I", "azmlinfsrv", "Worker count: %d" % cfg["worker_count"])
    host = Host(cfg)
    try:
        host.start()
        host.run()
    except Exception as exc:  # noqa: B902 - logged in the console log, and the backend restarts us
        import traceback

        log("C", "azmlinfsrv", "The instance host failed: %s" % "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip())
        for w in host.workers:
            if not w.exited:
                try:
                    w.proc.kill()
                except OSError:
                    pass
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    os._exit(main())
