"""The Python side of the protocol tests (run by src/protocol/golden.test.ts with /usr/bin/python3).

  check_python_codec.py golden <testdata dir>   the golden frames through infergate_worker.py's codec
  check_python_codec.py linear                  Worker.serve's reading: 1 MiB vs 64 MiB frames in 64 KiB chunks

Prints one JSON document on the worker's frame channel (the original stdout: importing the worker moves
fd 1 to stderr, as it does for scoring scripts).
"""

import io
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "runtime", "python"))
import infergate_worker as w  # noqa: E402  (moves fds 0 and 1 away, as in a real worker)


def golden(directory):
    with open(os.path.join(directory, "golden.json"), encoding="utf-8") as f:
        frames = json.load(f)["frames"]
    results = []
    for g in frames:
        if not g["python"]:
            continue
        with open(os.path.join(directory, g["file"]), "rb") as f:
            data = f.read()
        body = bytes.fromhex(g.get("bodyHex", ""))
        got = {}
        if g["type"] == "REQUEST":
            # Decoded as the worker decodes what the host relays; mid-buffer, as in serve().
            buf = b"\x00" * 3 + data
            method, url, headers, start = w.decode_request_head(buf, 3)
            got = {
                "type": buf[3 + 8],
                "id": w._U32.unpack_from(buf, 3 + 4)[0],
                "method": method,
                "url": url,
                "headers": [list(h) for h in headers],
                "bodyHex": bytes(buf[start:]).hex(),
            }
            want = {"type": w.FRAME_REQUEST, "id": g["id"], "method": g["method"], "url": g["url"], "headers": g["headers"], "bodyHex": g["bodyHex"]}
            ok = got == want
        elif g["type"] == "RESPONSE":
            encoded = w.response_frame(g["id"], g["status"], [w._header(k, v) for k, v in g["headers"]], body)
            ok = encoded == data
            got = {"hex": encoded.hex()}
        elif g["type"] == "CANCEL":
            encoded = w.cancel_frame(g["id"])
            ok = encoded == data
            got = {"hex": encoded.hex()}
        else:
            ok = False
            got = {"error": "no Python codec for " + g["type"]}
        results.append({"file": g["file"], "ok": ok, "got": got})
    return {"results": results}


class _Echo:
    """Worker.serve with a handle() that answers at once: only the reading is measured."""

    serve = w.Worker.serve

    def handle(self, buf, pos, end):
        return w.response_frame(w._U32.unpack_from(buf, pos + 4)[0], 200, [], str(end - pos).encode())


def _serve_once(size):
    """Seconds for serve() to read one REQUEST frame of `size` body bytes written in 64 KiB chunks."""
    head = bytearray(b"\x00\x00\x00\x00\x00\x00\x00\x07\x01\x04POST\x00\x06/score\x00\x00")
    frame = bytes(head) + bytes(size)
    frame = w._U32.pack(len(frame) - 4) + frame[4:]
    r, wr = os.pipe()

    def feed():
        with os.fdopen(wr, "wb", buffering=0) as f:
            for i in range(0, len(frame), 65536):
                f.write(frame[i:i + 65536])

    out = io.BytesIO()
    t = threading.Thread(target=feed)
    t0 = time.perf_counter()
    t.start()
    with os.fdopen(r, "rb", buffering=0) as inp:
        _Echo().serve(inp, out)
    elapsed = time.perf_counter() - t0
    t.join()
    answer = out.getvalue()
    assert answer[HEADER_SKIP:] == str(len(frame)).encode(), answer[:40]
    return elapsed


HEADER_SKIP = 13  # RESPONSE head with no headers: length, id, type, status, headerCount


def linear():
    small = min(_serve_once(1 << 20) for _ in range(3))
    big = _serve_once(64 << 20)
    return {"smallSeconds": small, "bigSeconds": big}


def main():
    result = golden(sys.argv[2]) if sys.argv[1] == "golden" else linear()
    _, out_fd = w.take_frame_channel()
    with os.fdopen(out_fd, "w") as out:
        out.write(json.dumps(result))


if __name__ == "__main__":
    main()
