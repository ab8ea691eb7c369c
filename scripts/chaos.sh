#!/usr/bin/env bash
# `make chaos`: the fault drill of bench/chaos.py on a throwaway MariaDB of its own
# (it crashes and restarts that server, so never the machine's shared one).
set -euo pipefail
cd "$(dirname "$0")/.."
unset TEST_DATABASE_URL
export MYSQL_FORCE_THROWAWAY=1
# A server of this run's own: never reuse (and crash, and stop) another run's throwaway server.
export MYSQL_SCRATCH_DIR=${MYSQL_SCRATCH_DIR:-/tmp/orders-mysql-chaos-$$}

server_url=$(bash scripts/mysql-server.sh url)
port=${server_url##*:}
port=${port%%/*}
scratch=""
for dir in /tmp/orders-mysql-* ${MYSQL_SCRATCH_DIR:-}; do
  if [[ -f $dir/port && $(cat "$dir/port") == "$port" ]]; then scratch=$dir; fi
done
[[ -n $scratch ]] || { echo "make chaos: cannot find the throwaway server's directory" >&2; exit 1; }

mariadb -h127.0.0.1 -P"$port" -uroot -e \
  "DROP DATABASE IF EXISTS orders_chaos; CREATE DATABASE orders_chaos CHARACTER SET utf8mb4"
set +e
DATABASE_URL="mysql://root@127.0.0.1:$port/orders_chaos" CHAOS_MYSQL_DIR=$scratch \
  .venv/bin/python -m bench.chaos
status=$?
set -e
bash scripts/mysql-server.sh stop
exit $status
