#!/usr/bin/env bash
# Stops the dockerd that scripts/setup.sh started, and only that one: without setup's pid file (a dockerd
# run by systemd, by the user, or already stopped) it leaves docker alone. dockerd stops its containers
# on SIGTERM (up to its shutdown timeout, 15 s by default) before it exits.
set -euo pipefail

# Keep in step with scripts/setup.sh.
DOCKERD_PIDFILE="${INFERGATE_DOCKERD_PIDFILE:-/run/infergate-dockerd.pid}"
WAIT_S=60

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# A dead dockerd stays a zombie until its parent reaps it, and setup's shell is gone, so its parent is
# whatever adopted it (an init that may not reap): only a state other than Z counts as running.
running() { local state; state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"; [ -n "$state" ] && [ "$state" != Z ]; }

if [ ! -f "$DOCKERD_PIDFILE" ]; then
  echo "stop-docker: setup did not start dockerd ($DOCKERD_PIDFILE is missing); leaving docker alone"
  exit 0
fi
pid="$(cat "$DOCKERD_PIDFILE")"
# The pid may have been reused since setup wrote it: stop it only while it still is a dockerd.
if ! running "$pid" || [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" != dockerd ]; then
  echo "stop-docker: the dockerd setup started (pid $pid) is no longer running"
  $SUDO rm -f "$DOCKERD_PIDFILE"
  exit 0
fi
echo "stop-docker: stopping dockerd (pid $pid)"
$SUDO kill -TERM "$pid"
deadline=$((SECONDS + WAIT_S))
while running "$pid"; do
  if [ $SECONDS -ge $deadline ]; then
    echo "stop-docker: dockerd (pid $pid) still runs ${WAIT_S} s after SIGTERM; leaving it (and $DOCKERD_PIDFILE) as they are" >&2
    exit 1
  fi
  sleep 0.2
done
$SUDO rm -f "$DOCKERD_PIDFILE"
echo "stop-docker: dockerd stopped"
