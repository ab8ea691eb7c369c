#!/usr/bin/env bash
# `make run`: migrate, create the demo user and token, then run the web server, the
# django-q2 cluster, the FIX venue (the simulated exchange, its own process and
# journal) and our FIX gateway in the foreground. Ctrl-C stops all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT=${PORT:-8000}
# Metrics: one directory shared by the web workers and the cluster, emptied before they start.
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$PWD/var/prometheus}
mkdir -p "$PROMETHEUS_MULTIPROC_DIR" && find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -delete

$PY manage.py migrate --noinput
$PY manage.py collectstatic --noinput -v0
$PY manage.py demo_setup --port "$PORT"

# Job control gives each process its own process group, so a Ctrl-C reaches only
# this script, which then signals each process exactly once (qcluster hangs when
# its main process is signalled twice).
set -m
pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping..." >&2
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

# The ASGI application under uvicorn serves the whole API, the back office (static files
# through WhiteNoise) and the order event stream (SPEC §10), whose idle connections hold
# no worker. Open streams are cut after 5 s on shutdown; clients resume with Last-Event-ID.
.venv/bin/uvicorn ordersite.asgi:application --host 127.0.0.1 --port "$PORT" \
  --workers "${WEB_CONCURRENCY:-2}" --timeout-graceful-shutdown 5 &
pids+=($!)
$PY manage.py qcluster &
pids+=($!)
if [[ ${EXCHANGE_TRANSPORT:-venue} == venue ]]; then
  $PY manage.py run_venue &
  pids+=($!)
  $PY manage.py run_gateway &
  pids+=($!)
fi

# Whichever process ends first (or Ctrl-C) takes the others down with it.
wait -n
