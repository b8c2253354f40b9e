"""Exits as soon as it is imported: the container dies at start, every time (crash-loop back-off)."""
import os

print("exit-at-import: exiting with code 1 at import", flush=True)
os._exit(1)


def init():
    pass


def run(raw_data):
    return "never"
