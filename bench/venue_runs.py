"""`make bench`'s venue runs (issue 9): reports ingested and applied, their lag, and end to end.

Every run starts ``run_venue``, ``run_gateway`` (its report consumer on) and the
django-q2 cluster with ``EXCHANGE_TRANSPORT=venue`` as ProcessGroups on loopback,
on an emptied order book, and stops them when it ends. The orders are ours: created
with ``order_create`` (or POSTed) and sent to the venue by the workers.
"""

import os
import socket
import tempfile
import threading
import time

from bench.common import (
    PY,
    ProcessGroup,
    check_invariants,
    child_pid,
    cpu_by_role,
    cpu_seconds,
    db_questions,
    free_port,
    manage,
    query,
)

RATES = [int(n) for n in os.environ.get("BENCH_VENUE_RATES", "5000 8000 11000").split()]
INGEST_SECONDS = int(os.environ.get("BENCH_VENUE_INGEST_SECONDS", "60"))
LAG_RATE = int(os.environ.get("BENCH_VENUE_LAG_RATE", "2000"))
LAG_SECONDS = int(os.environ.get("BENCH_VENUE_LAG_SECONDS", "20"))
E2E_SECONDS = int(os.environ.get("BENCH_VENUE_E2E_SECONDS", "30"))
SETTLE_TIMEOUT = int(os.environ.get("BENCH_VENUE_SETTLE_TIMEOUT", "180"))
FIREHOSE_ORDERS = 20

# Everything the order book, the queue, the outbox and the gateway's store hold.
WIPE = """
from django.apps import apps; from django.db import connection
models = [*apps.get_app_config('orders').get_models(), *apps.get_app_config('exchange').get_models(),
          apps.get_model('matching', 'OrderMatch'), apps.get_model('django_q', 'OrmQ')]
with connection.cursor() as c:
    c.execute('SET FOREIGN_KEY_CHECKS=0')
    for model in models:
        c.execute('TRUNCATE TABLE ' + connection.ops.quote_name(model._meta.db_table))
    c.execute('SET FOREIGN_KEY_CHECKS=1')
"""

FIREHOSE_ORDERS_CODE = """
from django.contrib.auth.models import User; from orders.services import order_create
owner = User.objects.get(username='bench')
for isin in {isins!r}:
    order_create(owner=owner, type='limit', side='buy', instrument=isin, quantity=1_000_000,
                 limit_price='1000.00', time_in_force='gtc')
"""

# Samples the stored reports (their highest id) and the applied ones (the order side's
# cursor) once a second; then the lag of every execution committed in the window.
SAMPLER = """
import json, statistics, time
from django.db.models import Max; from django.utils import timezone
from exchange.models import ExecutionReportRecord; from orders.models import Execution, ReportCursor
def stored(): return ExecutionReportRecord.objects.aggregate(top=Max('id'))['top'] or 0
def applied():
    return ReportCursor.objects.filter(name='venue').values_list('position', flat=True).first() or 0
deadline = time.monotonic() + 60
while not Execution.objects.exists():
    if time.monotonic() > deadline: raise SystemExit('no execution applied within 60 s')
    time.sleep(0.2)
time.sleep(3)
begin = timezone.now(); s0, a0 = stored(), applied(); last_s, last_a = s0, a0
started = time.monotonic(); per_s, per_a, backlog = [], [], []
for second in range(1, {seconds} + 1):
    time.sleep(max(0.0, started + second - time.monotonic()))
    s, a = stored(), applied()
    per_s.append(s - last_s); per_a.append(a - last_a); backlog.append(s - a); last_s, last_a = s, a
end = timezone.now()
lags = sorted((c - e).total_seconds() for e, c in Execution.objects.filter(
    created_at__gte=begin, created_at__lt=end).values_list('executed_at', 'created_at'))
q = statistics.quantiles(lags, n=100) if len(lags) > 1 else lags * 99
print(json.dumps({{'stored': per_s, 'applied': per_a, 'backlog': backlog, 'lags': len(lags),
    'p50': q[49] if lags else None, 'p99': q[98] if lags else None, 'max': max(lags) if lags else None}}))
"""


def log(message):
    print(message, flush=True)


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"bench: the venue did not listen on {port}")


class VenueStack:
    """run_venue + run_gateway + qcluster (venue transport) on a fresh journal and FIX session."""

    counter = 0

    def __init__(self, env: dict, tmp: str, *, firehose: int = 0, venue_env: dict | None = None):
        VenueStack.counter += 1
        self.port = free_port()
        self.journal = f"{tmp}/venue-{VenueStack.counter}.sqlite3"
        client = f"BENCH{os.getpid()}X{VenueStack.counter}"
        self.env = {
            **env,
            "EXCHANGE_TRANSPORT": "venue",
            "VENUE_PORT": str(self.port),
            "VENUE_DB": self.journal,
            "VENUE_CLIENT_COMP_ID": client,
        }
        argv = [PY, "manage.py", "run_venue", "--port", str(self.port), "--db", self.journal]
        if firehose:
            argv += ["--firehose", str(firehose)]
        self.venue = ProcessGroup("bench-venue", argv, {**self.env, **(venue_env or {})})
        self.gateway = ProcessGroup(
            "bench-gateway", [PY, "manage.py", "run_gateway", "--port", str(self.port)], self.env
        )
        self.cluster = ProcessGroup("bench-venue-cluster", [PY, "manage.py", "qcluster"], self.env)

    def __enter__(self) -> "VenueStack":
        manage(self.env, "shell", "-v0", "-c", WIPE)
        self.venue.start()
        wait_port(self.port)
        self.gateway.start()
        self.cluster.start()
        return self

    def __exit__(self, *exc) -> None:
        for group in (self.cluster, self.gateway, self.venue):
            group.stop()


def ingest(env: dict, tmp: str, rate: int, seconds: int, isins: list[str]) -> dict:
    """``run_venue --firehose rate`` fills our orders one share a report; sample stored and applied."""
    with VenueStack(env, tmp, firehose=rate, venue_env={"EXCHANGE_LATENCY": "0.01"}) as stack:
        manage(stack.env, "shell", "-v0", "-c", FIREHOSE_ORDERS_CODE.format(isins=isins))
        time.sleep(2)  # the gateway has started its report applier
        pids = {"venue": stack.venue.process.pid, "gateway": stack.gateway.process.pid}
        pids["applier"] = child_pid(pids["gateway"], "apply_venue_reports")
        cpu = {name: cpu_seconds(pid) for name, pid in pids.items() if pid}
        sample = query(stack.env, SAMPLER.format(seconds=seconds))
        cpu = {name: cpu_seconds(pids[name]) - before for name, before in cpu.items()}
    sample["cpu"] = cpu
    return sample


def ms(seconds) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def ingest_runs(env: dict, tmp: str, isins: list[str]) -> None:
    log(
        f"\n== Venue execution reports stored and applied: run_venue --firehose N fills "
        f"{FIREHOSE_ORDERS} of our orders one share a report, {INGEST_SECONDS}s sustained per N"
    )
    if not RATES or INGEST_SECONDS <= 0:
        log("(skipped: BENCH_VENUE_RATES empty or BENCH_VENUE_INGEST_SECONDS=0)")
    kept, top = None, None  # (N, applied/s, stored/s) of the highest N kept up with; of the most applied
    for rate in RATES if INGEST_SECONDS > 0 else []:
        s = ingest(env, tmp, rate, INGEST_SECONDS, isins[:FIREHOSE_ORDERS])
        stored = sum(s["stored"]) / len(s["stored"])
        applied = sum(s["applied"]) / len(s["applied"])
        growth = s["backlog"][-1] - s["backlog"][0]
        kept_up = growth < rate  # the backlog grew by less than a second's worth
        log(
            f"firehose N={rate:<6}: stored {stored:7.0f}/s  applied {applied:7.0f}/s  "
            f"(min {min(s['applied'])}/s)  backlog {s['backlog'][0]} -> {s['backlog'][-1]}  "
            f"{'kept up' if kept_up else 'FELL BEHIND'}; CPU-s gateway {s['cpu']['gateway']:.0f}, "
            f"applier {s['cpu'].get('applier', 0):.0f}, venue {s['cpu']['venue']:.0f}"
        )
        if top is None or applied > top[1]:
            top = (rate, applied, stored)
        if kept_up and (kept is None or rate > kept[0]):
            kept = (rate, applied, stored)
    if top is not None:
        if kept is None:
            line = f"{top[1]:8.0f} /s sustained, its ceiling: it fell behind at every N tried"
        else:
            line = f"{kept[1]:8.0f} /s sustained at N={kept[0]}, the highest N it kept up with"
        log(f"reports applied       : {line} (target >= 5,000)")
        log(
            f"  ceiling             : {top[1]:8.0f} /s applied at N={top[0]} "
            f"(the venue sent {top[2]:.0f}/s), the most of any N tried"
        )

    if LAG_SECONDS <= 0:
        log("(lag run skipped: BENCH_VENUE_LAG_SECONDS=0)")
        return
    s = ingest(env, tmp, LAG_RATE, LAG_SECONDS, isins[:FIREHOSE_ORDERS])
    applied = sum(s["applied"]) / len(s["applied"])
    log(
        f"lag at N={LAG_RATE}      : TransactTime -> execution row written: p50 {ms(s['p50'])}  "
        f"p99 {ms(s['p99'])}  max {ms(s['max'])}  ({s['lags']} executions, applied {applied:.0f}/s; "
        "target p99 <= 500 ms)"
    )


VENUE_ORDERS_LUA = """
local isins = {%s}
local tifs = {"day", "gtc", "gtc", "day", "ioc", "fok"}
math.randomseed(os.time())
request = function()
  local side = (math.random() < 0.5) and "buy" or "sell"
  local isin = isins[math.random(#isins)]
  local qty = math.random(1, 100)
  local price = (side == "buy") and "1000.00" or "1.00"
  local body = string.format(
    '{"type":"limit","side":"%%s","instrument":"%%s","limit_price":"%%s","quantity":%%d,"time_in_force":"%%s"}',
    side, isin, price, qty, tifs[math.random(#tifs)])
  return wrk.format("POST", nil, {["Content-Type"]="application/json",
    ["Authorization"]="Token __TOKEN__"}, body)
end
"""

STATUS_COUNTS = (
    "import json; from django.db.models import Count; from orders.models import Order;"
    "print(json.dumps(dict(Order.objects.values_list('status').annotate(c=Count('pk')))))"
)

TERMINAL = {"MATCHED", "FILLED", "CANCELLED", "EXPIRED", "REJECTED", "FAILED"}

# When each order left our book (its first event saying it reached the venue or ended:
# the event log is written in the transaction of the change), per second since the
# first order was created.
OUT_OF_BOOK = """
import json; from collections import Counter; from django.db.models import Min
from orders.models import Order, OrderEvent
start = Order.objects.aggregate(t=Min('created_at'))['t']
out = (OrderEvent.objects.exclude(name__in=['accepted', 'partially_filled', 'cancel_rejected'])
       .values('order_id').annotate(t=Min('created_at')).values_list('t', flat=True))
per_second = Counter(int((t - start).total_seconds()) for t in out)
print(json.dumps([per_second.get(s, 0) for s in range(max(per_second, default=-1) + 1)]))
"""


def end_to_end(env: dict, tmp: str, base: str, token: str, isins: list[str], wrk, connections: int) -> bool:
    """Mixed limit orders POSTed for E2E_SECONDS against the venue at its defaults; all end terminal."""
    if E2E_SECONDS <= 0:
        log("\n(venue end to end skipped: BENCH_VENUE_E2E_SECONDS=0)")
        return True
    with VenueStack(env, tmp) as stack:
        costs = WindowCosts(stack.env, 5, E2E_SECONDS - 2)
        time.sleep(3)
        log(
            f"\n== End to end through the venue: {E2E_SECONDS}s of GTC/DAY/IOC/FOK limit orders on "
            f"{len(isins)} instruments; venue latency {env.get('EXCHANGE_LATENCY', '0.5')}s, refusals "
            f"{env.get('EXCHANGE_FAILURE_RATE', '0.1')}, fills {env.get('VENUE_FILL_INTERVAL', '1.0')}s "
            f"apart, up to {env.get('VENUE_MAX_FILLS', '5')}"
        )
        started = time.monotonic()
        sampler = threading.Thread(target=costs.sample, args=(started,), daemon=True)
        sampler.start()
        load = wrk(f"{base}/orders", token, E2E_SECONDS, connections, VENUE_ORDERS_LUA % isins_lua(isins))
        sampler.join()
        log(
            f"POST under load       : {load['rps']:8.1f} req/s  p50 {load['p50']}  p99 {load['p99']}"
            f"  non-2xx {load['non2xx']}"
        )
        # Orders out of our book: at the venue (SUBMITTED or later) or ended internally.
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            counts = query(stack.env, STATUS_COUNTS)
            if counts.get("OPEN", 0) + counts.get("PARTIAL", 0) == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        out = time.monotonic() - started
        total = sum(counts.values())
        # Sustained: the seconds of the load after its first 5 (the pipeline filling) and
        # before its last 2; the figure above also holds the drain after the load, whose
        # last orders wait out the venue's latency and refusals with our retry backoff.
        per_second = query(stack.env, OUT_OF_BOOK)
        window = per_second[5 : E2E_SECONDS - 2] or per_second
        log(
            f"reached venue or ended: {sum(window) / len(window):8.1f} orders/s sustained (seconds 5-"
            f"{5 + len(window)} of the load: min {min(window)}/s, max {max(window)}/s; target >= 200)"
        )
        log(
            f"  with the drain      : {total / out:8.1f} orders/s ({total} orders, load start to the last "
            f"one out of our book {out:.1f}s)"
        )
        log(costs.report(sum(window)))
        while True:
            counts = query(stack.env, STATUS_COUNTS)
            if set(counts) <= TERMINAL or time.monotonic() > deadline:
                break
            time.sleep(1)
        final = time.monotonic() - started
        left = sum(n for status, n in counts.items() if status not in TERMINAL)
        log(
            f"terminal              : {total - left}/{total} after {final:.1f}s  by status {counts}"
            + (f"  ({left} NOT terminal after {SETTLE_TIMEOUT}s)" if left else "")
        )
        clean = check_invariants(stack.env)
    return clean and left == 0


class WindowCosts:
    """CPU seconds per process role and database statements over seconds [begin, end) of the load.

    Per order out of our book in the same seconds, these do not depend on how fast the
    machine happens to be as much as orders/s does (it varied by a third from run to run).
    """

    def __init__(self, env: dict, begin: int, end: int):
        self.env, self.begin, self.end = env, begin, end
        self.cpu: dict[str, float] = {}
        self.statements = 0
        self.seconds = 0.0

    def sample(self, started: float) -> None:
        time.sleep(max(0.0, started + self.begin - time.monotonic()))
        cpu, statements, at = cpu_by_role(), db_questions(self.env), time.monotonic()
        time.sleep(max(0.0, started + self.end - time.monotonic()))
        after = cpu_by_role()
        self.statements = db_questions(self.env) - statements
        self.seconds = time.monotonic() - at
        self.cpu = {role: after[role] - cpu.get(role, 0.0) for role in after}

    def report(self, orders: int) -> str:
        if not orders or not self.seconds:
            return "cost per order        : (not measured)"
        total = sum(self.cpu.values())
        roles = ", ".join(
            f"{role} {1000 * spent / orders:.1f}"
            for role, spent in sorted(self.cpu.items(), key=lambda item: -item[1])
            if spent >= 0.05
        )
        busy = total / self.seconds
        return (
            f"cost per order        : {1000 * total / orders:.1f} ms CPU ({busy:.2f} cores busy; {roles}), "
            f"{self.statements / orders:.1f} database statements (seconds {self.begin}-{self.end})"
        )


def isins_lua(isins: list[str]) -> str:
    return ", ".join(f'"{isin}"' for isin in isins)


def main(env: dict, base: str, token: str, isins: list[str], wrk, connections: int) -> bool:
    with tempfile.TemporaryDirectory(prefix="orders-bench-venue-") as tmp:
        ingest_runs(env, tmp, isins)
        return end_to_end(env, tmp, base, token, isins, wrk, connections)
