"""Takes its whole container down as it is imported, every time: the instance host (this worker's parent)
dies with SIGKILL before it can report anything, so the container exits at start. What crash-loop back-off
is for; a plain os._exit(1) here would only end the worker, which the host reports as a final
UserScriptInitFailed instead."""
import os
import signal

print("kill-host-at-import: taking the container down", flush=True)
os.kill(os.getppid(), signal.SIGKILL)
os._exit(1)


def init():
    pass


def run(raw_data):
    return "never"
