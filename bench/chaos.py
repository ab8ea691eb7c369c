"""`make chaos`: real processes, real faults, and a count of what every client was promised.

On a throwaway MariaDB, with gunicorn and the django-q2 cluster running, a load
generator posts orders (retrying with the same client_order_id when a request
breaks) while the run injects, in turn: a SIGKILL of the whole worker cluster,
a SIGKILL of a web worker mid-request, a 100 % exchange outage, a crash and
restart of the MySQL server, and the narrow-link incident of issue 8 (a cluster
with 4 exchange calls in flight and 30 % failures, a burst of crossing orders,
and an operator running ``sweep_orders`` again and again while the claimed calls
queue). Then it waits for every order to settle and prints, per fault, what was
accepted, settled, failed, lost and duplicated, and for how many orders the
exchange's ledger holds another quantity than the order's ``placed_quantity``.
Loopback only; every phase is bounded; it stops by itself.

``CHAOS_PHASES`` (comma-separated names of PHASES, default all) runs only some.
"""

import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import (
    GUNICORN,
    PY,
    ProcessGroup,
    api_token,
    check_invariants,
    manage,
    query,
    run_manage,
)

PORT = int(os.environ.get("CHAOS_PORT", "8766"))
PHASE_SECONDS = float(os.environ.get("CHAOS_PHASE_SECONDS", "20"))
RATE = float(os.environ.get("CHAOS_RATE", "60"))  # orders/s offered by the load generator
SETTLE_TIMEOUT = float(os.environ.get("CHAOS_SETTLE_TIMEOUT", "240"))
CLIENTS = 4
ISINS = ["US0378331005", "US5949181045", "DE000BAY0017", "GB0002634946", "NL0000235190"]

# Issue 8: the narrow exchange link the incident ran on. The sweeper's process
# gets it too: the operator ran `manage.py sweep_orders` with the service's environment.
NARROW_LINK_ENV = {
    "EXCHANGE_CONCURRENCY": "4",
    "EXCHANGE_LATENCY": "0.5",
    "EXCHANGE_FAILURE_RATE": "0.3",
    "PIPELINE_STALL_TIMEOUT": "3",
    # One worker process: the link's 4 calls in flight are all there is (each worker has its own 4).
    "Q_WORKERS": "1",
    # Orders rest a second in the book before they route, so crossing orders arrive
    # while others are resting, claimed or back in the book after a failed call.
    "MATCHING_WINDOW": "1",
}
NARROW_BURST_SECONDS = float(os.environ.get("CHAOS_NARROW_BURST_SECONDS", "12"))
NARROW_BURST_RATE = float(os.environ.get("CHAOS_NARROW_BURST_RATE", "25"))  # orders/s, 4 calls in flight
NARROW_SWEEP_SECONDS = float(os.environ.get("CHAOS_NARROW_SWEEP_SECONDS", "30"))  # from the burst's start
NARROW_SWEEP_INTERVAL = float(os.environ.get("CHAOS_NARROW_SWEEP_INTERVAL", "1.5"))
NARROW_ISINS = ISINS[:2]


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class MySQLServer:
    """The throwaway server scripts/mysql-server.sh started; crash-restart it with the same arguments."""

    def __init__(self, scratch_dir):
        self.dir = Path(scratch_dir)

    def _pid(self):
        return int((self.dir / "mysqld.pid").read_text().split()[0])

    def crash_and_restart(self, down_seconds=3.0):
        pid = self._pid()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        os.kill(pid, signal.SIGKILL)
        while Path(f"/proc/{pid}").exists() and "Z" not in _proc_state(pid):
            time.sleep(0.1)
        time.sleep(down_seconds)
        logfile = open(self.dir / "mysqld.log", "a")
        process = subprocess.Popen(
            [arg.decode() for arg in argv], stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True
        )
        (self.dir / "mysqld.pid").write_text(f"{process.pid}\n")
        return process.pid


def _proc_state(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "Z"


def random_order(rng):
    """The everyday mix: market and limit orders on five instruments, prices around 10."""
    market = rng.random() < 0.3
    body = {
        "type": "market" if market else "limit",
        "side": rng.choice(["buy", "sell"]),
        "instrument": rng.choice(ISINS),
        "quantity": rng.randint(1, 100),
    }
    if not market:
        body["limit_price"] = f"{rng.randint(990, 1010) / 100:.2f}"
    return body


def crossing_order(rng):
    """Issue 8's flow: buys and sells on two instruments whose price bands overlap at 9.98-10.02.

    Some orders cross at once; most rest and route after the matching window, and
    an order back in the book after a failed call crosses what arrived meanwhile.
    """
    side = rng.choice(["buy", "sell"])
    cents = rng.randint(993, 1002) if side == "buy" else rng.randint(998, 1007)
    return {
        "type": "limit",
        "side": side,
        "instrument": rng.choice(NARROW_ISINS),
        "quantity": rng.randint(1, 5) * 10,
        "limit_price": f"{cents / 100:.2f}",
    }


class Load:
    """Clients posting ``profile`` orders at ``rate`` in total; a broken request is retried with the same key.

    A phase may switch the profile and the rate (0 pauses the clients) while they run (``offer``).
    """

    def __init__(self, token):
        self.token = token
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.phase = "warm-up"
        self.profile = random_order
        self.rate = RATE
        self.until = float("inf")  # time.monotonic() after which the clients pause
        self.accepted = {}  # client_order_id -> (order id, phase)
        self.errors = 0
        self.statuses = {}

    def run_client(self, number):
        rng = random.Random(number)
        conn = None
        sequence = 0
        while not self.stop.is_set():
            started = time.monotonic()
            rate = self.rate if time.monotonic() < self.until else 0
            if rate <= 0:
                time.sleep(0.1)
                continue
            sequence += 1
            key = f"chaos-{number}-{sequence}"
            body = {**self.profile(rng), "client_order_id": key}
            phase = self.phase
            for _ in range(60):  # a client keeps retrying the same order for about a minute
                if self.stop.is_set() and _ > 5:
                    break
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=15)
                    conn.request(
                        "POST",
                        "/orders",
                        json.dumps(body),
                        {"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
                    )
                    response = conn.getresponse()
                    payload = response.read()
                    with self.lock:
                        self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
                    if response.status in (200, 201):
                        with self.lock:
                            self.accepted[key] = (json.loads(payload)["id"], phase)
                        break
                    if response.status < 500:
                        break
                except (OSError, http.client.HTTPException):
                    with self.lock:
                        self.errors += 1
                    if conn is not None:
                        conn.close()
                    conn = None
                time.sleep(0.5)
            time.sleep(max(0.0, CLIENTS / rate - (time.monotonic() - started)))

    def offer(self, profile, rate, seconds=float("inf")):
        """From now on post ``profile`` orders at ``rate`` per second, for ``seconds``, then pause."""
        self.profile, self.rate, self.until = profile, rate, time.monotonic() + seconds

    def start(self):
        self.threads = [
            threading.Thread(target=self.run_client, args=(n,), daemon=True) for n in range(CLIENTS)
        ]
        for thread in self.threads:
            thread.start()

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=90)


class Drill:
    """The processes under test and the faults injected into them, one method per phase."""

    def __init__(self, env, mysql, outage_file, token):
        self.env, self.mysql, self.outage_file = env, mysql, outage_file
        self.web = ProcessGroup(
            "chaos-web", [GUNICORN, "ordersite.wsgi", "--bind", f"127.0.0.1:{PORT}", "--workers", "2"], env
        )
        self.cluster = ProcessGroup("chaos-cluster", [PY, "manage.py", "qcluster"], env)
        self.load = Load(token)

    def kill_cluster(self):
        """SIGKILL the whole worker cluster, restart it two seconds later."""
        self.cluster.signal_group(signal.SIGKILL)
        time.sleep(2)
        self.cluster.start()

    def kill_web_workers_mid_request(self, times=5):
        """SIGKILL a web worker while it is running (a sync worker runs only inside a request)."""
        before = self.load.errors
        killed = 0
        deadline = time.monotonic() + PHASE_SECONDS / 2
        while killed < times and time.monotonic() < deadline:
            workers = subprocess.run(
                ["pgrep", "-P", str(self.web.process.pid)], text=True, capture_output=True
            ).stdout.split()
            busy = [pid for pid in map(int, workers) if _proc_state(pid) == "R"]
            if busy:
                os.kill(busy[0], signal.SIGKILL)  # the master forks a new one
                killed += 1
                time.sleep(1.0)
            else:
                time.sleep(0.001)
        time.sleep(1.0)
        log(f"killed {killed} busy web workers; {self.load.errors - before} client requests broke (retried)")

    def exchange_outage(self):
        """Every exchange call fails for half the phase."""
        self.outage_file.touch()
        time.sleep(PHASE_SECONDS / 2)
        self.outage_file.unlink(missing_ok=True)
        log("recovered: exchange is back")

    def crash_mysql(self):
        self.mysql.crash_and_restart()

    def narrow_link(self):
        """Issue 8: a narrow exchange link, a burst of crossing orders, an operator sweeping the backlog.

        The load pauses until the orders of earlier phases have settled, then the
        cluster restarts with NARROW_LINK_ENV (one worker, 4 calls in flight, 0.5 s
        each, 30 % failing, stall timeout 3 s). Clients post crossing orders faster
        than 4 calls can place them, so claimed calls queue for a free call thread;
        meanwhile the operator runs `manage.py sweep_orders` again and again, which
        re-sends the calls that waited past the stall timeout. A sweep finishes the
        calls it started before it exits, so with a backlog one lasts several seconds;
        the next starts NARROW_SWEEP_INTERVAL after the last began, or when it ends.
        Then the cluster gets its normal environment back and the everyday load resumes.
        """
        narrow_env = {**self.env, **NARROW_LINK_ENV}
        self.load.offer(random_order, 0)  # no orders while the cluster restarts
        self.quiesce()
        self.restart_cluster(narrow_env, "narrow link")
        self.load.offer(crossing_order, NARROW_BURST_RATE, NARROW_BURST_SECONDS)
        started = time.monotonic()
        log(f"narrow link: posting crossing orders at {NARROW_BURST_RATE:g}/s for {NARROW_BURST_SECONDS:g}s")
        sweeps = 0
        while time.monotonic() - started < NARROW_SWEEP_SECONDS:
            sweep_started = time.monotonic()
            sweep = run_manage(narrow_env, "sweep_orders", "--wait", "1")
            sweeps += 1
            said = (sweep.stdout + sweep.stderr).strip().splitlines()
            log(f"narrow link: sweep_orders #{sweeps}: {said[0] if said else f'exit {sweep.returncode}'}")
            time.sleep(max(0.0, NARROW_SWEEP_INTERVAL - (time.monotonic() - sweep_started)))
        self.restart_cluster(self.env, "normal")
        self.load.offer(random_order, RATE)

    def quiesce(self, timeout=45.0):
        """Wait (without sweeping) until the orders of earlier phases have settled.

        So the restart and the sweeps of a phase do not act on them, and what the
        table counts for a phase is what its own fault did.
        """
        deadline = time.monotonic() + timeout
        while (working := working_orders(self.env)) != 0 and time.monotonic() < deadline:
            time.sleep(1)
        log(f"quiesced: {'no' if working == 0 else working} orders of earlier phases still working")

    def restart_cluster(self, env, label):
        """Stop the cluster and start it with ``env``.

        SIGTERM goes to qcluster's main process only (it stops its workers; signalled
        twice it hangs), then SIGKILL to whatever is left after a grace period.
        """
        stopping = time.monotonic()
        self.cluster.process.send_signal(signal.SIGTERM)
        try:
            self.cluster.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            log("cluster did not stop within 15 s of SIGTERM; killing it")
        self.cluster.stop()
        log(f"cluster stopped in {time.monotonic() - stopping:.1f}s")
        self.cluster.env = env
        self.cluster.start()
        time.sleep(2)
        log(f"cluster restarted ({label} environment)")


# CHAOS_PHASES name -> (label in the table, Drill method); run in this order.
PHASES = {
    "cluster_kill": ("worker cluster SIGKILL", Drill.kill_cluster),
    "web_kill": ("web worker SIGKILL", Drill.kill_web_workers_mid_request),
    "exchange_outage": ("exchange 100% outage", Drill.exchange_outage),
    "mysql_crash": ("MySQL crash + restart", Drill.crash_mysql),
    "narrow_link": ("narrow link + sweeps", Drill.narrow_link),
}


def selected_phases():
    names = [name.strip() for name in os.environ.get("CHAOS_PHASES", ",".join(PHASES)).split(",")]
    unknown = [name for name in names if name and name not in PHASES]
    if unknown:
        raise SystemExit(f"chaos: unknown CHAOS_PHASES {unknown}; known: {', '.join(PHASES)}")
    return [name for name in PHASES if name in names]


def working_orders(env):
    """How many orders are still working (OPEN or PARTIAL, in the book or in flight); None if unknown."""
    try:
        return query(
            env,
            "import json; from orders.models import Order;"
            "print(json.dumps(Order.objects.filter(status__in=Order.WORKING_STATUSES).count()))",
        )
    except subprocess.CalledProcessError:
        return None


def settle(env):
    """Sweep until no order is working or SETTLE_TIMEOUT passes."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        working = working_orders(env)
        if working == 0:
            return
        log(f"waiting: {working} orders still working; sweeping")
        run_manage(env, "sweep_orders", "--wait", "20")
        time.sleep(5)


def final_state(env):
    """Every order (status, seconds to its last update, placed quantity, in flight), the ledger, duplicate keys."""
    return query(
        env,
        "import json; from django.db.models import Count;"
        "from orders.models import Order; from exchange.models import ExchangeOrder;"
        "rows = {str(o.pk): [o.status, (o.updated_at - o.created_at).total_seconds(), o.placed_quantity,"
        " o.in_flight, o.client_order_id] for o in Order.objects.all()};"
        "ledger = {str(k): v for k, v in ExchangeOrder.objects.values_list('order_id', 'quantity')};"
        "dup_keys = list(Order.objects.values('owner', 'client_order_id').annotate(n=Count('pk'))"
        ".filter(n__gt=1).values_list('client_order_id', flat=True));"
        "print(json.dumps({'rows': rows, 'ledger': ledger, 'dup_keys': dup_keys}))",
    )


COLUMNS = [
    # (header, width): lost = accepted but no row; working = still OPEN/PARTIAL or in flight after
    # settling; dup = a client_order_id with two orders; ledger≠placed = the exchange's ledger
    # quantity is not the order's placed_quantity (held but not placed, placed but not held, or another amount).
    ("fault", 26),
    ("accepted", 9),
    ("settled", 9),
    ("failed", 8),
    ("lost", 6),
    ("working", 9),
    ("dup", 5),
    ("ledger≠placed", 15),
    ("max settle s", 14),
]
COUNTS = ["accepted", "settled", "failed", "lost", "working", "dup", "mismatch"]


def tally(phase_names, accepted, state):
    """One row of counts per phase (orders attributed to the phase their client posted them in), and the total.

    Orders nobody was told about (a client gave up) and ledger rows for no order are
    counted in an "unattributed" row, shown only when non-empty.
    """
    rows, ledger, dup_keys = state["rows"], state["ledger"], set(state["dup_keys"])

    def mismatch(order_id):
        placed = rows[order_id][2] if order_id in rows else 0
        return ledger.get(order_id, 0) != placed

    def is_working(order_id):
        status, _, _, in_flight, _ = rows[order_id]
        return status in ("OPEN", "PARTIAL") or in_flight

    table = []
    for name in phase_names:
        ids = [order_id for order_id, phase_name in accepted.values() if phase_name == name]
        present = [i for i in ids if i in rows]
        done = [i for i in present if not is_working(i)]
        counts = {
            "accepted": len(ids),
            "settled": len(done),
            "failed": sum(1 for i in present if rows[i][0] == "FAILED"),
            "lost": len(ids) - len(present),
            "working": len(present) - len(done),
            "dup": sum(1 for i in present if rows[i][4] in dup_keys),
            "mismatch": sum(1 for i in present if mismatch(i)),
        }
        settle_seconds = max((rows[i][1] for i in done), default=0.0)
        table.append((name, counts, settle_seconds))

    attributed = {order_id for order_id, _ in accepted.values()}
    others = [i for i in rows if i not in attributed]
    strays = [i for i in ledger if i not in rows]  # the exchange holds an order we have no row for
    unattributed = {key: 0 for key in COUNTS}
    unattributed.update(
        settled=sum(1 for i in others if not is_working(i)),
        failed=sum(1 for i in others if rows[i][0] == "FAILED"),
        working=sum(1 for i in others if is_working(i)),
        dup=sum(1 for i in others if rows[i][4] in dup_keys),
        mismatch=sum(1 for i in others if mismatch(i)) + len(strays),
    )
    if any(unattributed.values()):
        table.append(("unattributed", unattributed, 0.0))

    total = {key: sum(counts[key] for _, counts, _ in table) for key in COUNTS}
    return table, total


def mismatch_kinds(state):
    """How the ledger and placed_quantity differ, by the order's final status: {"MATCHED, held not placed": n}."""
    rows, ledger = state["rows"], state["ledger"]
    kinds = {}
    for order_id in {*rows, *ledger}:
        status, placed = (rows[order_id][0], rows[order_id][2]) if order_id in rows else ("no order", 0)
        held = ledger.get(order_id, 0)
        if held == placed:
            continue
        kind = "held not placed" if not placed else "placed not held" if not held else "held another amount"
        kinds[f"{status}, {kind}"] = kinds.get(f"{status}, {kind}", 0) + 1
    return kinds


def print_table(table, total):
    print()
    print(
        "".join(
            f"{header:<{width}}" if i == 0 else f"{header:>{width}}"
            for i, (header, width) in enumerate(COLUMNS)
        )
    )
    widths = [width for _, width in COLUMNS]
    for name, counts, settle_seconds in [*table, ("total", total, None)]:
        cells = [f"{name:<{widths[0]}}"]
        cells += [f"{counts[key]:>{width}}" for key, width in zip(COUNTS, widths[1:-1], strict=True)]
        cells.append(f"{settle_seconds:>{widths[-1]}.1f}" if settle_seconds is not None else "")
        print("".join(cells))


def main():
    outage_file = Path("/tmp/orders-chaos-exchange-outage")
    outage_file.unlink(missing_ok=True)
    metrics_dir = tempfile.mkdtemp(prefix="orders-metrics-")
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        "LOG_LEVEL": "WARNING",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "EXCHANGE_OUTAGE_FILE": str(outage_file),
        # The in-process exchange of SPEC §6 (issue 8's numbers); the venue runs are their own.
        "EXCHANGE_TRANSPORT": os.environ.get("EXCHANGE_TRANSPORT", "inprocess"),
        # Recover within seconds rather than the production 30 s (the run is bounded).
        "PIPELINE_STALL_TIMEOUT": os.environ.get("PIPELINE_STALL_TIMEOUT", "5"),
    }
    phases = selected_phases()
    manage(env, "migrate", "--noinput", "-v0")
    drill = Drill(env, MySQLServer(os.environ["CHAOS_MYSQL_DIR"]), outage_file, api_token(env, "chaos"))
    load = drill.load
    drill.web.start()
    drill.cluster.start()
    time.sleep(4)
    load.start()
    labels = []
    try:
        time.sleep(PHASE_SECONDS / 2)
        for name in phases:
            label, inject = PHASES[name]
            load.phase = label
            started = time.monotonic()
            log(f"fault: {label}")
            inject(drill)
            time.sleep(max(0.0, PHASE_SECONDS - (time.monotonic() - started)))
            labels.append(label)
        load.phase = "after faults"
        time.sleep(PHASE_SECONDS / 2)
    finally:
        load.finish()
        outage_file.unlink(missing_ok=True)
    log(
        f"load stopped: {len(load.accepted)} orders accepted, responses {load.statuses}, broken requests {load.errors}"
    )

    settle(env)
    state = final_state(env)
    drill.web.stop()
    drill.cluster.stop()
    shutil.rmtree(metrics_dir, ignore_errors=True)

    table, total = tally(["warm-up", *labels, "after faults"], load.accepted, state)
    print_table(table, total)
    non_terminal = sum(
        1
        for status, _, _, in_flight, _ in state["rows"].values()
        if status in ("OPEN", "PARTIAL") or in_flight
    )
    print(
        f"orders non-terminal after settling: {non_terminal} of {len(state['rows'])}; "
        f"duplicate client_order_ids: {len(state['dup_keys'])}; "
        f"ledger≠placed: {total['mismatch']} (the exchange holds {len(state['ledger'])} orders)"
    )
    kinds = mismatch_kinds(state)
    if kinds:
        print("ledger≠placed by final status: " + "; ".join(f"{k}: {n}" for k, n in sorted(kinds.items())))

    clean = check_invariants(env, label_width=0)
    failing = [
        name
        for name, counts, _ in table
        if counts["lost"] or counts["working"] or counts["dup"] or counts["mismatch"]
    ]
    ok = not failing and clean and total["accepted"] > 0
    if failing:
        print(f"lost, working, duplicated or ledger≠placed orders in: {', '.join(failing)}")
    print("chaos: PASS" if ok else "chaos: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
