#!/usr/bin/env python3
"""Installs a conda file's packages into an environment image (docker backend, issue 11 item 2).

Run by the generated Dockerfile of an environment image, `FROM <the environment's image>`, as
`python3 infergate_env_install.py /infergate-env/spec.json`, where spec.json is written by infergate
(src/backend/docker/images.ts):
  {"conda": <the conda file as JSON>, "condaFile": "/infergate-env/conda.yaml",
   "pip": ["numpy==1.26", ...], "imports": ["numpy", "sklearn", ...]}
Azure builds its images the same way: `conda env create` of the conda file on top of the base image.
  - conda on PATH: `conda env update -n base -f conda.yaml` (the base environment is the one `python3`
    runs in Azure's images); a failure fails the build.
  - else pip in the image (`python3 -m pip`): the pip list is installed; a failure fails the build.
  - else (a minimal image, e.g. Debian's python3 without pip): nothing can be installed; the build
    checks which of the packages the conda file lists can be imported and says which cannot, as the
    process backend does when it cannot build an environment. The build succeeds: the scoring script
    may not need them all (Azure's examples list azureml-defaults, which infergate's host replaces).
Standard library only.
"""
import importlib.util
import json
import shutil
import subprocess
import sys


def importable(name):
    try:
        return importlib.util.find_spec(name) is not None
    except Exception:
        return False


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    conda = shutil.which("conda")
    if conda:
        print("infergate: installing the conda file with %s env update -n base" % conda, flush=True)
        return subprocess.call([conda, "env", "update", "-n", "base", "-f", spec["condaFile"]])
    pip_ok = subprocess.call([sys.executable, "-m", "pip", "--version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0
    if pip_ok and spec.get("pip"):
        print("infergate: no conda in the image; installing the pip list with %s -m pip" % sys.executable, flush=True)
        return subprocess.call([sys.executable, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check"] + spec["pip"])
    missing = [m for m in spec.get("imports", []) if not importable(m)]
    print(
        "infergate: the image has %s; installing nothing. Python %s. %s"
        % (
            "pip but the conda file has no pip list" if pip_ok else "neither conda nor pip",
            sys.version.split()[0],
            "Cannot import: %s (the scoring script may fail)" % ", ".join(missing) if missing else "Every listed package imports.",
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
