# A scoring script for the protocol tests (src/router/protocol-host.test.ts): records every run() it
# starts (so a test can tell a request that never ran from one that ran late), sleeps when asked, and
# reports the longest request header name it was given.
import json
import time


def init():
    pass


def run(raw_data, request_headers):
    data = json.loads(raw_data)
    if data.get("record"):
        with open(data["record"], "a") as f:
            f.write(data["name"] + "\n")
    time.sleep(data.get("sleep", 0))
    return {"name": data["name"], "longest_header": max(len(k) for k in request_headers)}
