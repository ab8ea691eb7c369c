"""`make bench`: POST /orders against its bare-DRF yardstick, orders settled end to end, the venue.

Runs real processes on loopback only: uvicorn as make run serves it (bench settings), the django-q2
cluster and wrk; then ``run_venue`` and ``run_gateway`` (bench/venue_runs.py). Every
phase is bounded in time. Prints the figures of issues 2, 3, 8 and 9.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from bench import venue_runs
from bench.common import (
    GUNICORN,
    PY,
    ROOT,
    UVICORN,
    ProcessGroup,
    api_token,
    check_invariants,
    db_questions,
    manage,
    query,
)

PORT = int(os.environ.get("BENCH_PORT", "8765"))
WEB_WORKERS = int(os.environ.get("BENCH_WEB_WORKERS", "2"))
API_SECONDS = int(os.environ.get("BENCH_API_SECONDS", "10"))
API_CONNECTIONS = int(os.environ.get("BENCH_API_CONNECTIONS", "8"))
E2E_SECONDS = int(os.environ.get("BENCH_E2E_SECONDS", "30"))
# One worker process holds EXCHANGE_CONCURRENCY calls in flight; on 2 cores a second
# one only competes with the web server for the CPU (see docs/decisions.md).
Q_WORKERS = os.environ.get("Q_WORKERS", "1")
E2E_CONNECTIONS = int(os.environ.get("BENCH_E2E_CONNECTIONS", "8"))
SETTLE_TIMEOUT = int(os.environ.get("BENCH_SETTLE_TIMEOUT", "180"))
INSTRUMENTS = 20
VENUE = os.environ.get("BENCH_VENUE", "1") != "0"
# The web server: uvicorn with the ASGI application, as make run serves it, or
# BENCH_WEB_SERVER=gunicorn for gunicorn's sync workers (the figures before issue 9's last session).
WEB_SERVER = os.environ.get("BENCH_WEB_SERVER", "uvicorn")


def log(message):
    print(message, flush=True)


def isin_with_check_digit(body: str) -> str:
    sys.path.insert(0, str(ROOT))
    from orders.isin import isin_check_digit

    return body + str(isin_check_digit(body))


def wait_http(url, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:
            time.sleep(0.2)
    raise SystemExit(f"bench: {url} did not come up")


def wrk(url, token, seconds, connections, lua_body):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua_body.replace("__TOKEN__", token))
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url],
        check=True,
        text=True,
        capture_output=True,
        timeout=seconds + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {m.group(1): m.group(2) for m in re.finditer(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": latency.get("50"),
        "p99": latency.get("99"),
        "non2xx": int(bad.group(1)) if bad else 0,
    }


FIXED_BODY_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Token __TOKEN__"
wrk.body = '{"type": "limit", "side": "buy", "instrument": "US0378331005", "limit_price": "10.50", "quantity": 100}'
"""

MIXED_ORDERS_LUA = """
local isins = {%s}
math.randomseed(os.time())
request = function()
  local side = (math.random() < 0.5) and "buy" or "sell"
  local isin = isins[math.random(#isins)]
  local qty = math.random(1, 100)
  local body
  if math.random() < 0.3 then
    body = string.format('{"type":"market","side":"%%s","instrument":"%%s","quantity":%%d}', side, isin, qty)
  else
    local price = string.format("%%.2f", math.random(990, 1010) / 100)
    body = string.format('{"type":"limit","side":"%%s","instrument":"%%s","limit_price":"%%s","quantity":%%d}',
      side, isin, price, qty)
  end
  return wrk.format("POST", nil, {["Content-Type"]="application/json",
    ["Authorization"]="Token __TOKEN__"}, body)
end
"""


def intake(base, token):
    """Issue 2: POST /orders against the bare DRF yardstick, no cluster running (intake only)."""
    log(
        f"\n== POST /orders intake vs bare DRF ModelViewSet ({API_SECONDS}s each, "
        f"{API_CONNECTIONS} connections, same {WEB_SERVER}, same database)"
    )
    wrk(f"{base}/bench/bare-orders/", token, 3, API_CONNECTIONS, FIXED_BODY_LUA)  # warm-up
    wrk(f"{base}/orders", token, 3, API_CONNECTIONS, FIXED_BODY_LUA)
    bare = wrk(f"{base}/bench/bare-orders/", token, API_SECONDS, API_CONNECTIONS, FIXED_BODY_LUA)
    ours = wrk(f"{base}/orders", token, API_SECONDS, API_CONNECTIONS, FIXED_BODY_LUA)
    log(
        f"bare DRF ModelViewSet : {bare['rps']:8.1f} req/s  p50 {bare['p50']}  p99 {bare['p99']}"
        f"  non-2xx {bare['non2xx']}"
    )
    log(
        f"POST /orders          : {ours['rps']:8.1f} req/s  p50 {ours['p50']}  p99 {ours['p99']}"
        f"  non-2xx {ours['non2xx']}"
    )
    log(f"throughput ratio      : {ours['rps'] / bare['rps']:.2f}x  (target >= 0.80x)")


DOMAIN_COUNTERS = (
    "orders_accepted_total",
    "orders_matched_fills_total",
    "orders_placed_total",
    "orders_failed_total",
    "orders_submit_latency_seconds_count",
)


def scrape_metrics(base) -> dict[str, float]:
    """GET /metrics (as Prometheus would, from loopback); sum each sample name over its labels."""
    totals: dict[str, float] = {}
    for line in urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            name = name.split("{")[0]
            totals[name] = totals.get(name, 0.0) + float(value)
    return totals


QUEUE_DEPTH = "import json; from django_q.models import OrmQ; print(json.dumps(OrmQ.objects.count()))"


def inprocess_end_to_end(env, base, token, isins, cluster) -> bool:
    """Issue 3 and 8: mixed orders settled end to end with the in-process exchange; a lone order."""
    cluster.start()
    time.sleep(3)
    lua = MIXED_ORDERS_LUA % ", ".join(f'"{isin}"' for isin in isins)
    log(
        f"\n== End to end: {E2E_SECONDS}s of mixed market/limit orders on {INSTRUMENTS} instruments, "
        f"exchange latency {env.get('EXCHANGE_LATENCY', '0.5')}s, failure rate "
        f"{env.get('EXCHANGE_FAILURE_RATE', '0.1')}, matching window {env.get('MATCHING_WINDOW', '0.5')}s"
    )
    questions_before = db_questions(env)
    metrics_before = scrape_metrics(base)
    load = wrk(f"{base}/orders", token, E2E_SECONDS, E2E_CONNECTIONS, lua)
    log(
        f"POST under load       : {load['rps']:8.1f} req/s  p50 {load['p50']}  p99 {load['p99']}"
        f"  non-2xx {load['non2xx']}"
    )
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        working = query(
            env,
            (
                "import json; from orders.models import Order;"
                "print(json.dumps(Order.objects.filter(status__in=Order.WORKING_STATUSES).count()))"
            ),
        )
        if working == 0:
            break
        time.sleep(1)
    stats = query(
        env,
        (
            "import json; from django.db.models import Count, Min, Max; from orders.models import Order;"
            "from exchange.models import ExchangeOrder;"
            "a=Order.objects.aggregate(n=Count('pk'), first=Min('created_at'), last=Max('updated_at'));"
            "s=dict(Order.objects.values_list('status').annotate(c=Count('pk')));"
            "print(json.dumps({'n': a['n'], 'seconds': (a['last']-a['first']).total_seconds(),"
            " 'statuses': s, 'ledger': ExchangeOrder.objects.count()}))"
        ),
    )
    questions = db_questions(env) - questions_before
    log(f"orders accepted       : {stats['n']}  by status {stats['statuses']}")
    log(f"database statements   : {questions / stats['n']:.1f} per order (server-wide)")
    metrics_after = scrape_metrics(base)
    moved = ", ".join(
        f"{name} +{metrics_after.get(name, 0) - metrics_before.get(name, 0):g}" for name in DOMAIN_COUNTERS
    )
    log(f"/metrics during run   : {moved}")
    log(
        f"settled end to end    : {stats['n'] / stats['seconds']:8.1f} orders/s "
        f"({stats['n']} orders, first POST to last settlement {stats['seconds']:.1f}s; target >= 150)"
    )

    # Tasks of orders an earlier batch pass already matched are no-ops, but they
    # queue; wait for them so the lone order below meets a quiet system.
    drained = time.monotonic()
    while time.monotonic() - drained < 120 and query(env, QUEUE_DEPTH) > 0:
        time.sleep(0.5)
    log(f"queue drained         : {time.monotonic() - drained:.1f}s after the last settlement")

    # Lone order on a quiet system: POST to SUBMITTED.
    lone = []
    for n in range(5):
        isin = isin_with_check_digit(f"XS{n:09d}")
        body = json.dumps(
            {"type": "limit", "side": "buy", "instrument": isin, "limit_price": "1.00", "quantity": 1}
        ).encode()
        request = urllib.request.Request(
            f"{base}/orders",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
        )
        started = time.monotonic()
        order = json.load(urllib.request.urlopen(request, timeout=10))
        while True:
            poll = urllib.request.Request(
                f"{base}/orders/{order['id']}", headers={"Authorization": f"Token {token}"}
            )
            status = json.load(urllib.request.urlopen(poll, timeout=10))["status"]
            if status not in ("OPEN", "PARTIAL") or time.monotonic() - started > 60:
                break
            time.sleep(0.01)
        lone.append((time.monotonic() - started, status))
    times = sorted(t for t, _ in lone)
    log(
        f"lone order to terminal: median {times[len(times) // 2]:.2f}s "
        f"(runs: {', '.join(f'{t:.2f}s {s}' for t, s in lone)})"
    )

    clean = check_invariants(env)
    return clean


def main():
    scratch = tempfile.mkdtemp(prefix="orders-bench-")
    metrics_dir = os.path.join(scratch, "metrics")
    os.mkdir(metrics_dir)
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        # No venue in the in-process parts: their check_invariants must not read a journal
        # make run left in var/ (orders of another database). The venue runs name their own.
        "VENUE_DB": os.path.join(scratch, "venue.sqlite3"),
        # The benchmark measures the throttle's cost, never its limit.
        "API_THROTTLE_USER": os.environ.get("API_THROTTLE_USER", "1000000/min"),
        "Q_WORKERS": Q_WORKERS,
        # The in-process exchange of SPEC §6 (issue 8's numbers); the venue runs are their own.
        "EXCHANGE_TRANSPORT": os.environ.get("EXCHANGE_TRANSPORT", "inprocess"),
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "LOG_LEVEL": "WARNING",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    base = f"http://127.0.0.1:{PORT}"
    log(
        f"bench: database {env['DATABASE_URL'].split('@')[-1]}, {os.cpu_count()} cores, "
        f"{WEB_WORKERS} {WEB_SERVER} workers, {Q_WORKERS} django-q2 worker process(es)"
    )
    manage(env, "migrate", "--noinput", "-v0")
    token = api_token(env, "bench")

    if WEB_SERVER == "uvicorn":
        argv = [UVICORN, "ordersite.asgi:application", "--port", str(PORT), "--workers", str(WEB_WORKERS)]
        argv += ["--no-access-log", "--lifespan", "off", "--backlog", "4096"]
    else:
        argv = [GUNICORN, "ordersite.wsgi", "--bind", f"127.0.0.1:{PORT}", "--workers", str(WEB_WORKERS)]
        argv += ["--log-level", "warning"]
    web = ProcessGroup("bench-web", argv, env)
    cluster = ProcessGroup("bench-cluster", [PY, "manage.py", "qcluster"], env)
    try:
        web.start()
        wait_http(f"{base}/healthz")

        if API_SECONDS <= 0:
            log("(intake comparison skipped: BENCH_API_SECONDS=0)")
        else:
            intake(base, token)

        # Start the pipeline on a clean slate.
        manage(env, "shell", "-v0", "-c", venue_runs.WIPE)

        # --- issue 3: orders settled end to end (the in-process exchange)
        isins = [isin_with_check_digit(f"US{n:09d}") for n in range(1, INSTRUMENTS + 1)]
        if E2E_SECONDS <= 0:
            log("\n(in-process end to end skipped: BENCH_E2E_SECONDS=0)")
            clean = True
        else:
            clean = inprocess_end_to_end(env, base, token, isins, cluster)
        cluster.stop()  # the in-process exchange's workers must not pick up the venue runs' orders

        if VENUE:
            clean = venue_runs.main(env, base, token, isins, wrk, E2E_CONNECTIONS) and clean
        else:
            log("\n(venue runs skipped: BENCH_VENUE=0)")
        return 0 if clean else 1
    finally:
        web.stop()
        cluster.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
