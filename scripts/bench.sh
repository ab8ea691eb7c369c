#!/usr/bin/env bash
# `make bench`: a MySQL-compatible server (as for the tests), a fresh bench database,
# then bench/run.py. Loopback only; every phase is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  if [[ $(id -u) -eq 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null || {
      apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }
  else
    echo "make bench needs wrk: sudo apt-get install -y wrk" >&2; exit 1
  fi
fi
server_url=$(bash scripts/mysql-server.sh url)
server_url=${BENCH_DATABASE_SERVER:-$server_url}
mysql_args=$(.venv/bin/python - "$server_url" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
print(f"-h{u.hostname or '127.0.0.1'} -P{u.port or 3306} -u{u.username or 'root'}" + (f" -p{u.password}" if u.password else ""))
PY
)
# shellcheck disable=SC2086
db=${BENCH_DATABASE_NAME:-orders_bench}
# shellcheck disable=SC2086
mariadb $mysql_args -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db CHARACTER SET utf8mb4"
DATABASE_URL="${server_url%/}/$db" .venv/bin/python -m bench.run
# BENCH_EVENTS=1: the order event stream too (bench/events.py: 1,000 idle streams, delivery latency).
if [[ ${BENCH_EVENTS:-0} == 1 ]]; then
  # shellcheck disable=SC2086
  mariadb $mysql_args -e "DROP DATABASE IF EXISTS ${db}_events; CREATE DATABASE ${db}_events CHARACTER SET utf8mb4"
  DATABASE_URL="${server_url%/}/${db}_events" .venv/bin/python -m bench.events
fi
