#!/usr/bin/env bash
# `make test`: a MySQL-compatible server (reachable, TEST_DATABASE_URL, or a throwaway
# one), then the whole suite on it. Fails when pytest collects or runs no test.
set -euo pipefail
cd "$(dirname "$0")/.."

server_url=$(bash scripts/mysql-server.sh url)
if [[ -n "${TEST_DATABASE_URL:-}" ]]; then
  database_url=$TEST_DATABASE_URL
else
  # A name of its own per run: two checkouts (a developer's and CI's) can share a server.
  database_url="${server_url%/}/orders_run$$"
fi
echo "make test: database ${database_url%%@*}@${database_url#*@}" | sed -E 's#//[^:@/]+:[^@]+@#//***@#' >&2

set +e
DATABASE_URL=$database_url .venv/bin/python -m pytest "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "make test: pytest collected no tests; that is a failure here" >&2
  exit 1
fi
exit $status
