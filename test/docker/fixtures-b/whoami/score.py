"""Says which container answered: the docker suites tell instances (and replacements) apart by it."""
import json
import os
import socket
import time


def init():
    if os.environ.get("WHOAMI_EXIT_AT_INIT") == "1":
        # A container that dies at start, every time: what crash-loop back-off is for.
        print("whoami: exiting at start on purpose", flush=True)
        os._exit(1)


def run(raw_data):
    req = json.loads(raw_data) if raw_data else {}
    rid = req.get("id")
    if rid is not None:
        # The instance's console log names every request it took: the tests count the ones a killed
        # container held from it.
        print("whoami: took " + str(rid), flush=True)
    time.sleep(float(req.get("sleep", 0)))
    return {"host": socket.gethostname(), "id": rid, "version": os.environ.get("WHOAMI_VERSION", "1")}
