"""A scoring script for src/runtime/python-host.test.ts: run() does what the request asks, and `record`
appends to RECORD_FILE, so a test can tell which requests ran at all (a cancelled one must not)."""
import json
import os
import time


def init():
    print("python-host fixture: init", flush=True)


def run(raw_data):
    req = json.loads(raw_data)
    op = req.get("op")
    if op == "echo":
        return req
    if op == "sleep":
        if "announce" in req:
            # A console-log line once the worker holds the request: tests wait for it, not for a guessed time.
            print("python-host fixture: " + req["announce"], flush=True)
        time.sleep(req["seconds"])
        return {"pid": os.getpid()}
    if op == "pid":
        return {"pid": os.getpid()}
    if op == "record":
        with open(os.environ["RECORD_FILE"], "a") as f:
            f.write(req["tag"] + "\n")
        return {"recorded": req["tag"]}
    if op == "size":
        return {"length": len(raw_data)}
    return {"unknown": op}
