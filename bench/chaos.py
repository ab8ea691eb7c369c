"""`make chaos`: real processes, real faults, and a count of what every client was promised.

On a throwaway MariaDB, with uvicorn (the ASGI app, serving the order event stream), the django-q2 cluster, the FIX venue
(``run_venue``, a journal of its own) and our FIX gateway (``run_gateway``)
running, a load generator posts orders (retrying with the same client_order_id
when a request breaks) while the run injects, in turn, mid-stream: a SIGKILL of
the whole worker cluster, of the gateway, of the venue (each then restarted),
session faults at the venue (duplicates, gaps, disconnects), a SIGKILL of a web
worker mid-request, a venue outage, a crash and restart of the MySQL server, and
the narrow-link incident of issue 8 on the in-process exchange (a cluster with 4
exchange calls in flight and 30 % failures, a burst of crossing orders, and an
operator running ``sweep_orders`` again and again while the claimed calls queue).
Then it waits for every order to be final and prints, per fault, what was
accepted, settled, failed, lost and doubled, for how many orders our venue fills
or placed quantity differ from the venue's journal, and for how many the
in-process exchange's ledger holds another quantity than ``placed_quantity``.
One follower per client reads ``GET /orders/events`` throughout, resuming with
Last-Event-ID after every drop (web kills, the MySQL crash); at the end their
events are compared with the event log: events missed and events repeated, per phase.
Loopback only; every phase is bounded; it stops by itself.

``CHAOS_PHASES`` (comma-separated names of PHASES, default all) runs only some.
"""

import http.client
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import (
    PY,
    UVICORN,
    ProcessGroup,
    api_token,
    check_invariants,
    child_pid,
    free_port,
    manage,
    query,
    run_manage,
)
from bench.stream_follower import StreamFollower, event_log_rows

PORT = int(os.environ.get("CHAOS_PORT", "8766"))
PHASE_SECONDS = float(os.environ.get("CHAOS_PHASE_SECONDS", "20"))
RATE = float(os.environ.get("CHAOS_RATE", "30"))  # orders/s offered by the load generator
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

# Session faults at the venue, per outbound message; strong enough that each fires
# several times within a phase (a few hundred reports a second).
SESSION_FAULTS = os.environ.get("CHAOS_VENUE_FAULTS", "dup=0.05,gap=0.01,disconnect=0.002")
# Statuses after which nothing more happens to an order (an in-process SUBMITTED is one too).
FINAL = ("MATCHED", "FILLED", "CANCELLED", "EXPIRED", "REJECTED", "FAILED")


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


def venue_order(rng):
    """The venue run's mix: limit orders the venue's market fills, crossing each other too.

    Buys limited at 1000.00 and sells at 1.00 on five instruments (reference prices
    10-100): the venue fills each within seconds (1-5 fills, 1 s apart), so DAY and
    GTC orders end FILLED without waiting for the venue's day end; IOC and FOK fill
    what the market offers at once and are cancelled for the rest. Buys and sells
    resting in our book meanwhile match each other internally.
    """
    side = rng.choice(["buy", "sell"])
    return {
        "type": "limit",
        "side": side,
        "instrument": rng.choice(ISINS),
        "quantity": rng.randint(1, 100),
        "limit_price": "1000.00" if side == "buy" else "1.00",
        "time_in_force": rng.choices(["day", "gtc", "ioc", "fok"], weights=[4, 3, 2, 1])[0],
    }


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
        self.profile = venue_order
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

    def __init__(self, env, mysql, token):
        self.env, self.mysql = env, mysql
        # As `make run` serves it: the ASGI app under uvicorn, whose supervisor restarts a dead worker.
        self.web = ProcessGroup(
            "chaos-web",
            [
                UVICORN,
                "ordersite.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(PORT),
                "--workers",
                "2",
                "--timeout-graceful-shutdown",
                "2",
            ],
            env,
        )
        self.cluster = ProcessGroup("chaos-cluster", [PY, "manage.py", "qcluster"], env)
        self.venue = ProcessGroup("chaos-venue", [PY, "manage.py", "run_venue"], env)
        self.gateway = ProcessGroup("chaos-gateway", [PY, "manage.py", "run_gateway"], env)
        self.load = Load(token)
        # One event stream per client (they share the drill's token), from the first event on.
        self.followers = [StreamFollower(f"http://127.0.0.1:{PORT}", token, since=0) for _ in range(CLIENTS)]

    def start(self):
        self.venue.start()
        wait_for_port(int(self.env["VENUE_PORT"]))
        for group in (self.gateway, self.web, self.cluster):
            group.start()

    def stop(self):
        for group in (self.web, self.cluster, self.gateway, self.venue):
            group.stop()

    def kill_cluster(self):
        """SIGKILL the whole worker cluster, restart it two seconds later."""
        self.cluster.signal_group(signal.SIGKILL)
        time.sleep(2)
        self.cluster.start()

    def kill_gateway(self):
        """SIGKILL run_gateway mid-stream (reports in its socket, outbox rows unsent), restart it 2 s later."""
        self._kill_and_restart(self.gateway, "gateway")

    def kill_applier(self):
        """SIGKILL run_gateway's report applier (its child) mid-batch, twice; the gateway restarts it."""
        killed = []
        for _ in range(2):
            pid = applier_pid(self.gateway)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(PHASE_SECONDS / 3)
        now = applier_pid(self.gateway)
        log(f"report applier SIGKILLed {len(killed)} times ({killed}); running again as {now}")

    def kill_venue(self):
        """SIGKILL run_venue mid-stream (fills due, reports unsent), restart it 2 s later on its journal."""
        self._kill_and_restart(self.venue, "venue")

    def _kill_and_restart(self, group, name):
        before = venue_progress(self.env)
        group.signal_group(signal.SIGKILL)
        group.process.wait()
        time.sleep(2)
        group.start()
        log(f"{name} SIGKILLed and restarted; {before}")

    def session_faults(self):
        """The venue restarted with VENUE_FAULTS (duplicates, gaps, disconnects) for the phase, then without."""
        self.restart_venue({**self.env, "VENUE_FAULTS": SESSION_FAULTS}, f"VENUE_FAULTS={SESSION_FAULTS}")
        time.sleep(max(1.0, PHASE_SECONDS - 3))
        self.restart_venue(self.env, "no faults")
        log(f"session faults: gateway saw {gateway_session_stats(self.env)}")

    def venue_outage(self):
        """The venue down (SIGTERM: it logs us out) for half the phase, then back on its journal."""
        self.venue.stop()
        time.sleep(PHASE_SECONDS / 2)
        self.venue.start()
        log("recovered: the venue is back")

    def restart_venue(self, env, label):
        """Stop the venue cleanly (SIGTERM logs the client out) and start it with ``env``."""
        self.venue.stop()
        self.venue.env = env
        self.venue.start()
        wait_for_port(int(env["VENUE_PORT"]))
        log(f"venue restarted ({label})")

    def web_workers(self):
        """The uvicorn supervisor's worker processes (multiprocessing children, not its resource tracker)."""
        children = subprocess.run(
            ["pgrep", "-P", str(self.web.process.pid)], text=True, capture_output=True
        ).stdout.split()
        workers = []
        for pid in map(int, children):
            try:
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    workers.append(pid)
            except FileNotFoundError:
                pass
        return workers

    def kill_web_workers_mid_request(self, times=5):
        """SIGKILL a web worker while it is running, five times.

        An idle async worker sleeps in its event loop; one in state R is serving a
        request (or waking its event streams), so requests in it break (the clients
        retry) and the event streams it holds are cut (the followers resume).
        """
        before = self.load.errors
        reconnects = sum(follower.reconnects for follower in self.followers)
        killed = 0
        deadline = time.monotonic() + PHASE_SECONDS / 2
        while killed < times and time.monotonic() < deadline:
            busy = [pid for pid in self.web_workers() if _proc_state(pid) == "R"]
            if busy:
                os.kill(busy[0], signal.SIGKILL)  # the supervisor starts a new one
                killed += 1
                time.sleep(1.0)
            else:
                time.sleep(0.001)
        time.sleep(1.0)
        log(
            f"killed {killed} busy web workers; {self.load.errors - before} client requests broke (retried);"
            f" event streams resumed {sum(f.reconnects for f in self.followers) - reconnects} times"
        )

    def crash_mysql(self):
        self.mysql.crash_and_restart()

    def narrow_link(self):
        """Issue 8: a narrow exchange link, a burst of crossing orders, an operator sweeping the backlog.

        It needs the in-process exchange (its call threads): the load pauses until the
        orders of earlier phases are final, then the cluster restarts on
        ``EXCHANGE_TRANSPORT=inprocess`` with NARROW_LINK_ENV (one worker, 4 calls in flight, 0.5 s
        each, 30 % failing, stall timeout 3 s). Clients post crossing orders faster
        than 4 calls can place them, so claimed calls queue for a free call thread;
        meanwhile the operator runs `manage.py sweep_orders` again and again, which
        re-sends the calls that waited past the stall timeout. A sweep finishes the
        calls it started before it exits, so with a backlog one lasts several seconds;
        the next starts NARROW_SWEEP_INTERVAL after the last began, or when it ends.
        Once its orders are final too, the cluster gets its normal (venue)
        environment back and the everyday load resumes.
        """
        narrow_env = {**self.env, **NARROW_LINK_ENV, "EXCHANGE_TRANSPORT": "inprocess"}
        self.load.offer(venue_order, 0)  # no orders while the cluster restarts
        if self.quiesce() != 0:
            # The in-process sweeper would ask its own exchange about orders in flight
            # to the venue, be told "not held", and place them a second time.
            log("narrow link skipped: orders still working at the venue")
            self.load.offer(venue_order, RATE)
            return
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
        # Nothing of the burst may reach the venue: an order still in flight to the
        # in-process exchange would be asked about at the venue, "not held", and placed
        # there too. So the in-process sweeper answers those calls first.
        self.settle_in_process(narrow_env)
        self.restart_cluster(self.env, "normal")
        self.load.offer(venue_order, RATE)

    def quiesce(self, timeout=45.0):
        """Wait (without sweeping) until the orders of earlier phases are final.

        So the restart and the sweeps of a phase do not act on them, and what the
        table counts for a phase is what its own fault did.
        """
        deadline = time.monotonic() + timeout
        while (working := working_orders(self.env)) != 0 and time.monotonic() < deadline:
            time.sleep(1)
        log(f"quiesced: {'no' if working == 0 else working} orders of earlier phases still working")
        return working

    def settle_in_process(self, narrow_env, timeout=90.0):
        """Sweep on the in-process exchange until the narrow link's orders are final (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while (working := working_orders(self.env)) != 0 and time.monotonic() < deadline:
            run_manage(narrow_env, "sweep_orders", "--wait", "5")
            time.sleep(1)
        log(
            f"narrow link: {'no' if working == 0 else working} orders still working on the in-process exchange"
        )

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
    "gateway_kill": ("gateway SIGKILL", Drill.kill_gateway),
    "applier_kill": ("report applier SIGKILL", Drill.kill_applier),
    "venue_kill": ("venue SIGKILL", Drill.kill_venue),
    "session_faults": ("venue session faults", Drill.session_faults),
    "web_kill": ("web worker SIGKILL", Drill.kill_web_workers_mid_request),
    "venue_outage": ("venue outage", Drill.venue_outage),
    "mysql_crash": ("MySQL crash + restart", Drill.crash_mysql),
    "narrow_link": ("narrow link (in-process)", Drill.narrow_link),
}


def applier_pid(gateway: ProcessGroup) -> int | None:
    """The pid of the gateway's child ``apply_venue_reports``, if one runs."""
    return child_pid(gateway.process.pid, "apply_venue_reports")


def selected_phases():
    names = [name.strip() for name in os.environ.get("CHAOS_PHASES", ",".join(PHASES)).split(",")]
    unknown = [name for name in names if name and name not in PHASES]
    if unknown:
        raise SystemExit(f"chaos: unknown CHAOS_PHASES {unknown}; known: {', '.join(PHASES)}")
    return [name for name in PHASES if name in names]


def working_orders(env):
    """How many orders are not final (in our book, in flight, or working at the venue); None if unknown."""
    try:
        return query(
            env,
            "import json; from orders.models import Order;"
            "print(json.dumps((Order.objects.unsettled() | Order.objects.in_flight()).distinct().count()))",
        )
    except subprocess.CalledProcessError:
        return None


def venue_progress(env):
    """A line on the venue's and our side of the stream: orders and executions each holds."""
    journal = venue_journal(env)
    try:
        ours = query(
            env,
            "import json; from orders.models import Execution, Order;"
            "print(json.dumps([Order.objects.exclude(venue_status='').count(), Execution.objects.count()]))",
        )
    except subprocess.CalledProcessError:
        ours = ["?", "?"]
    return (
        f"venue journal: {len(journal['held'])} orders, {sum(journal['fill_counts'].values())} fills; "
        f"ours: {ours[0]} orders reported on, {ours[1]} venue executions"
    )


def gateway_session_stats(env):
    try:
        return query(
            env,
            "import json; from exchange.models import FixSession;"
            "print(json.dumps(list(FixSession.objects.values('resend_requests_sent', 'duplicates_ignored',"
            " 'last_disconnect_reason'))))",
        )
    except subprocess.CalledProcessError:
        return "?"


def venue_journal(env):
    """The venue's journal (SPEC §9): fills per ClOrdID, quantity held, and how many orders per ClOrdID."""
    path = Path(env["VENUE_DB"])
    out = {"fills": {}, "fill_counts": {}, "held": {}, "orders_per_id": {}}
    if not path.exists():
        return out
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as journal:
        for cl_ord_id, total, count in journal.execute(
            "SELECT cl_ord_id, SUM(last_qty), COUNT(*) FROM venue_execution WHERE exec_type = 'F' GROUP BY cl_ord_id"
        ):
            out["fills"][cl_ord_id], out["fill_counts"][cl_ord_id] = total, count
        for cl_ord_id, quantity, status in journal.execute(
            "SELECT cl_ord_id, quantity, status FROM venue_order"
        ):
            out["orders_per_id"][cl_ord_id] = out["orders_per_id"].get(cl_ord_id, 0) + 1
            if status != "REJECTED":
                out["held"][cl_ord_id] = quantity
    return out


def wait_for_port(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    log(f"nothing listens on port {port} after {timeout:g}s")


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
    """Every order, the in-process ledger, duplicate keys, and the venue's journal.

    ``rows``: order id -> [status, seconds to its last update, placed quantity, in
    flight, client_order_id, venue status, sum of its venue executions].
    """
    state = query(
        env,
        "import json; from django.db.models import Count, Sum;"
        "from orders.models import Execution, Order; from exchange.models import ExchangeOrder;"
        "fills = {str(k): v for k, v in Execution.objects.values('order_id').annotate(t=Sum('quantity'))"
        ".values_list('order_id', 't')};"
        "rows = {str(o.pk): [o.status, (o.updated_at - o.created_at).total_seconds(), o.placed_quantity,"
        " o.in_flight, o.client_order_id, o.venue_status, fills.get(str(o.pk), 0)] for o in Order.objects.all()};"
        "ledger = {str(k): v for k, v in ExchangeOrder.objects.values_list('order_id', 'quantity')};"
        "dup_keys = list(Order.objects.values('owner', 'client_order_id').annotate(n=Count('pk'))"
        ".filter(n__gt=1).values_list('client_order_id', flat=True));"
        "print(json.dumps({'rows': rows, 'ledger': ledger, 'dup_keys': dup_keys}))",
    )
    state["journal"] = venue_journal(env)
    return state


COLUMNS = [
    # (header, width): lost = accepted but no row; working = not final after settling (in our
    # book, in flight, or working at the venue); dup = a client_order_id with two orders, or a
    # ClOrdID the venue holds twice; fills≠venue = our venue executions or placed quantity differ
    # from the venue's journal; ledger≠placed = the in-process exchange's ledger quantity is not
    # the order's placed_quantity (orders the venue never reported on).
    ("fault", 26),
    ("accepted", 9),
    ("settled", 9),
    ("failed", 8),
    ("lost", 6),
    ("working", 9),
    ("dup", 5),
    ("fills≠venue", 13),
    ("ledger≠placed", 15),
    ("ev missed", 11),
    ("ev repeated", 13),
    ("max settle s", 14),
]
COUNTS = [
    "accepted",
    "settled",
    "failed",
    "lost",
    "working",
    "dup",
    "venue",
    "mismatch",
    "ev_missed",
    "ev_repeated",
]
FAILING = ["lost", "working", "dup", "venue", "mismatch", "ev_missed", "ev_repeated"]
FOLLOW_UP_TIMEOUT = float(os.environ.get("CHAOS_FOLLOW_UP_TIMEOUT", "60"))


def follow_up(env, followers):
    """Wait (bounded) until every follower has seen the log's newest event, then compare each with the log.

    Returns per-order counts of events missed and repeated, summed over the followers
    (each follows the same client, so one event missed by two followers counts twice),
    the followers' reports, and how many events they saw that the log does not hold.
    """
    rows = event_log_rows(env, "chaos")
    newest = max((event_id for event_id, _, _ in rows), default=0)
    deadline = time.monotonic() + FOLLOW_UP_TIMEOUT
    while time.monotonic() < deadline and any((f.last_id or 0) < newest for f in followers):
        time.sleep(0.2)
    caught_up = all((f.last_id or 0) >= newest for f in followers)
    time.sleep(1)  # an event repeated after the newest would show now
    log(f"event streams: newest event {newest}, followers at {[f.last_id for f in followers]}")
    order_of = {event_id: order_id for event_id, order_id, _ in rows}
    missed, repeated, reports = {}, {}, []
    for follower in followers:
        report = follower.report(rows)
        reports.append(report)
        for event_id in report.missed:
            missed[order_of[event_id]] = missed.get(order_of[event_id], 0) + 1
        counts = {}
        for event_id, order_id, _ in follower.seen:
            counts[(event_id, order_id)] = counts.get((event_id, order_id), 0) + 1
        for (_, order_id), n in counts.items():
            if n > 1:
                repeated[order_id] = repeated.get(order_id, 0) + n - 1
    return {
        "missed": missed,
        "repeated": repeated,
        "reports": reports,
        "errors": [len(f.errors) for f in followers],
        "unexpected": sum(len(r.unexpected) for r in reports),
        "logged": len(rows),
        "caught_up": caught_up,
    }


class Verdicts:
    """Per order: is it working, doubled, off the venue's journal, off the in-process ledger."""

    def __init__(self, state):
        self.rows, self.ledger, self.journal = state["rows"], state["ledger"], state["journal"]
        self.dup_keys = set(state["dup_keys"])

    def working(self, order_id):
        """Not final: FINAL statuses are, and SUBMITTED to the in-process exchange (it keeps nothing working)."""
        status, _, _, in_flight, _, venue_status, _ = self.rows[order_id]
        final = status in FINAL or (status == "SUBMITTED" and not venue_status)
        return not final or in_flight

    def doubled(self, order_id):
        return self.rows[order_id][4] in self.dup_keys or self.journal["orders_per_id"].get(order_id, 0) > 1

    def venue_problem(self, order_id):
        """Why our view of the order differs from the venue's journal ("" if it does not)."""
        journal = self.journal
        placed, venue_status, fills = self.rows[order_id][2], self.rows[order_id][5], self.rows[order_id][6]
        if fills != journal["fills"].get(order_id, 0):
            return "fills differ"
        if order_id in journal["held"] and not venue_status:
            return "held, never reported"
        if venue_status and placed != journal["held"].get(order_id, 0):
            return "placed≠held"
        return ""

    def ledger_mismatch(self, order_id):
        """The in-process ledger against placed_quantity (orders the venue reported on are placed there).

        An order the in-process exchange holds and the venue reported on was placed twice.
        """
        placed, venue_status = self.rows[order_id][2], self.rows[order_id][5]
        if venue_status:
            return order_id in self.ledger
        return self.ledger.get(order_id, 0) != placed


def tally(phase_names, accepted, state, stream):
    """One row of counts per phase (orders attributed to the phase their client posted them in), and the total.

    Orders nobody was told about (a client gave up), ledger rows and venue orders for
    no order are counted in an "unattributed" row, shown only when non-empty.
    """
    rows = state["rows"]
    verdicts = Verdicts(state)

    def counts_for(present):
        done = [i for i in present if not verdicts.working(i)]
        return done, {
            "settled": len(done),
            "failed": sum(1 for i in present if rows[i][0] == "FAILED"),
            "working": len(present) - len(done),
            "dup": sum(1 for i in present if verdicts.doubled(i)),
            "venue": sum(1 for i in present if verdicts.venue_problem(i)),
            "mismatch": sum(1 for i in present if verdicts.ledger_mismatch(i)),
            "ev_missed": sum(stream["missed"].get(i, 0) for i in present),
            "ev_repeated": sum(stream["repeated"].get(i, 0) for i in present),
        }

    table = []
    for name in phase_names:
        ids = [order_id for order_id, phase_name in accepted.values() if phase_name == name]
        present = [i for i in ids if i in rows]
        done, counts = counts_for(present)
        counts.update(accepted=len(ids), lost=len(ids) - len(present))
        settle_seconds = max((rows[i][1] for i in done), default=0.0)
        table.append((name, counts, settle_seconds))

    attributed = {order_id for order_id, _ in accepted.values()}
    _, unattributed = counts_for([i for i in rows if i not in attributed])
    unattributed.update(accepted=0, lost=0)
    # The in-process exchange or the venue holds an order we have no row for.
    unattributed["mismatch"] += sum(1 for i in state["ledger"] if i not in rows)
    unattributed["venue"] += sum(
        1 for i in {*state["journal"]["held"], *state["journal"]["fills"]} if i not in rows
    )
    if any(unattributed.values()):
        table.append(("unattributed", unattributed, 0.0))

    total = {key: sum(counts[key] for _, counts, _ in table) for key in COUNTS}
    return table, total


def mismatch_kinds(state):
    """How orders differ from the ledger or the journal, by final status: {"MATCHED, held not placed": n}."""
    rows, ledger = state["rows"], state["ledger"]
    verdicts = Verdicts(state)
    kinds = {}
    for order_id in {*rows, *ledger}:
        if order_id not in rows:
            kinds["no order, in the ledger"] = kinds.get("no order, in the ledger", 0) + 1
            continue
        status, placed = rows[order_id][0], rows[order_id][2]
        if verdicts.ledger_mismatch(order_id):
            held = ledger.get(order_id, 0)
            kind = (
                "held not placed" if not placed else "placed not held" if not held else "held another amount"
            )
            kinds[f"{status}, ledger {kind}"] = kinds.get(f"{status}, ledger {kind}", 0) + 1
        if problem := verdicts.venue_problem(order_id):
            kinds[f"{status}, venue {problem}"] = kinds.get(f"{status}, venue {problem}", 0) + 1
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
    metrics_dir = tempfile.mkdtemp(prefix="orders-metrics-")
    venue_dir = tempfile.mkdtemp(prefix="orders-chaos-venue-")
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        "LOG_LEVEL": "WARNING",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        # The FIX venue (SPEC §9) with its defaults: 0.5 s latency, 10 % transient
        # refusals, fills 1 s apart; its own journal and port. The narrow link phase
        # restarts the cluster on the in-process exchange.
        "EXCHANGE_TRANSPORT": "venue",
        "VENUE_DB": str(Path(venue_dir) / "venue.sqlite3"),
        "VENUE_PORT": os.environ.get("CHAOS_VENUE_PORT") or str(free_port()),
        "VENUE_FAULTS": "",
        # Back within seconds of the venue (not the production 30 s cap), and recover
        # stalled claims within seconds rather than 30 s (the run is bounded).
        "GATEWAY_RECONNECT_CAP": os.environ.get("GATEWAY_RECONNECT_CAP", "2"),
        "PIPELINE_STALL_TIMEOUT": os.environ.get("PIPELINE_STALL_TIMEOUT", "5"),
    }
    phases = selected_phases()
    manage(env, "migrate", "--noinput", "-v0")
    drill = Drill(env, MySQLServer(os.environ["CHAOS_MYSQL_DIR"]), api_token(env, "chaos"))
    load = drill.load
    log(f"venue on port {env['VENUE_PORT']}, journal {env['VENUE_DB']}")
    drill.start()
    wait_for_port(PORT)
    time.sleep(4)
    for follower in drill.followers:
        follower.start()
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
    log(
        f"load stopped: {len(load.accepted)} orders accepted, responses {load.statuses}, broken requests {load.errors}"
    )

    try:
        settle(env)
        state = final_state(env)
        stream = follow_up(env, drill.followers)
        log(venue_progress(env))
        log(f"gateway session: {gateway_session_stats(env)}")
    finally:
        for follower in drill.followers:
            follower.stop()
        drill.stop()
    shutil.rmtree(metrics_dir, ignore_errors=True)

    table, total = tally(["warm-up", *labels, "after faults"], load.accepted, state, stream)
    print_table(table, total)
    verdicts = Verdicts(state)
    non_terminal = sum(1 for order_id in state["rows"] if verdicts.working(order_id))
    print(
        f"orders not final after settling: {non_terminal} of {len(state['rows'])}; "
        f"duplicate client_order_ids: {len(state['dup_keys'])}; "
        f"the venue holds {len(state['journal']['held'])} orders, fills≠venue: {total['venue']}; "
        f"the in-process exchange holds {len(state['ledger'])}, ledger≠placed: {total['mismatch']}"
    )
    kinds = mismatch_kinds(state)
    if kinds:
        print("mismatches by final status: " + "; ".join(f"{k}: {n}" for k, n in sorted(kinds.items())))
        for order_id in sorted(i for i in state["rows"] if verdicts.venue_problem(i))[:10]:
            print(
                f"  {order_id}: {state['rows'][order_id]} journal fills {state['journal']['fills'].get(order_id)}"
                f" held {state['journal']['held'].get(order_id)}"
            )

    print(
        f"event streams: {len(stream['reports'])} followers, {stream['logged']} events in the log for the drill's"
        f" client; missed: {total['ev_missed']}, repeated: {total['ev_repeated']}, not in the log: "
        f"{stream['unexpected']}; caught up: {'yes' if stream['caught_up'] else 'NO'}"
    )
    for number, report in enumerate(stream["reports"]):
        print(f"  follower {number}: {report}; errors {stream['errors'][number]}")
    clean = check_invariants(env, label_width=0)
    failing = [name for name, counts, _ in table if any(counts[key] for key in FAILING)]
    ok = not failing and clean and total["accepted"] > 0 and not stream["unexpected"] and stream["caught_up"]
    if failing:
        print(
            "lost, working, doubled, fills≠venue or ledger≠placed orders, or events missed or repeated, in: "
            + ", ".join(failing)
        )
    if ok:
        shutil.rmtree(venue_dir, ignore_errors=True)
    else:
        print(f"the venue's journal is kept at {env['VENUE_DB']}")
    print("chaos: PASS" if ok else "chaos: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
