"""`make chaos`: real processes, real faults, and a count of what every client was promised.

On a throwaway MariaDB, with gunicorn and the django-q2 cluster running, a load
generator posts orders (retrying with the same client_order_id when a request
breaks) while the run injects, in turn: a SIGKILL of the whole worker cluster,
a SIGKILL of a web worker mid-request, a 100 % exchange outage, and a crash and
restart of the MySQL server. Then it waits for every order to settle and prints,
per fault, what was accepted, settled, failed and duplicated. Loopback only;
every phase is bounded; it stops by itself.
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

from bench.common import GUNICORN, PY, ROOT, ProcessGroup, api_token, check_invariants, manage, query

PORT = int(os.environ.get("CHAOS_PORT", "8766"))
PHASE_SECONDS = float(os.environ.get("CHAOS_PHASE_SECONDS", "20"))
RATE = float(os.environ.get("CHAOS_RATE", "60"))  # orders/s offered by the load generator
SETTLE_TIMEOUT = float(os.environ.get("CHAOS_SETTLE_TIMEOUT", "240"))
CLIENTS = 4
ISINS = ["US0378331005", "US5949181045", "DE000BAY0017", "GB0002634946", "NL0000235190"]


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


class Load:
    """Clients posting orders at RATE in total; a broken request is retried with the same key."""

    def __init__(self, token):
        self.token = token
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.phase = "warm-up"
        self.accepted = {}  # client_order_id -> (order id, phase)
        self.errors = 0
        self.statuses = {}

    def run_client(self, number):
        rng = random.Random(number)
        conn = None
        sequence = 0
        interval = CLIENTS / RATE
        while not self.stop.is_set():
            started = time.monotonic()
            sequence += 1
            key = f"chaos-{number}-{sequence}"
            market = rng.random() < 0.3
            body = {
                "type": "market" if market else "limit",
                "side": rng.choice(["buy", "sell"]),
                "instrument": rng.choice(ISINS),
                "quantity": rng.randint(1, 100),
                "client_order_id": key,
            }
            if not market:
                body["limit_price"] = f"{rng.randint(990, 1010) / 100:.2f}"
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
            time.sleep(max(0.0, interval - (time.monotonic() - started)))

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
        # Recover within seconds rather than the production 30 s (the run is bounded).
        "PIPELINE_STALL_TIMEOUT": os.environ.get("PIPELINE_STALL_TIMEOUT", "5"),
    }
    mysql = MySQLServer(os.environ["CHAOS_MYSQL_DIR"])
    manage(env, "migrate", "--noinput", "-v0")
    token = api_token(env, "chaos")

    web = ProcessGroup(
        "chaos-web", [GUNICORN, "ordersite.wsgi", "--bind", f"127.0.0.1:{PORT}", "--workers", "2"], env
    )
    cluster = ProcessGroup("chaos-cluster", [PY, "manage.py", "qcluster"], env)
    web.start()
    cluster.start()
    time.sleep(4)
    load = Load(token)
    load.start()
    faults = []

    def phase(name, action, recover=None):
        load.phase = name
        started = time.monotonic()
        log(f"fault: {name}")
        action()
        if recover:
            time.sleep(PHASE_SECONDS / 2)
            recover()
            log(f"recovered: {name}")
        time.sleep(max(0.0, PHASE_SECONDS - (time.monotonic() - started)))
        faults.append(name)

    try:
        time.sleep(PHASE_SECONDS / 2)

        def kill_cluster():
            cluster.signal_group(signal.SIGKILL)
            time.sleep(2)
            cluster.start()

        phase("worker cluster SIGKILL", kill_cluster)

        def kill_web_workers_mid_request(times=5):
            """SIGKILL a web worker while it is running (a sync worker runs only inside a request)."""
            before = load.errors
            killed = 0
            deadline = time.monotonic() + PHASE_SECONDS / 2
            while killed < times and time.monotonic() < deadline:
                workers = subprocess.run(
                    ["pgrep", "-P", str(web.process.pid)], text=True, capture_output=True
                ).stdout.split()
                busy = [pid for pid in map(int, workers) if _proc_state(pid) == "R"]
                if busy:
                    os.kill(busy[0], signal.SIGKILL)  # the master forks a new one
                    killed += 1
                    time.sleep(1.0)
                else:
                    time.sleep(0.001)
            time.sleep(1.0)
            log(f"killed {killed} busy web workers; {load.errors - before} client requests broke (retried)")

        phase("web worker SIGKILL", kill_web_workers_mid_request)
        phase("exchange 100% outage", outage_file.touch, lambda: outage_file.unlink(missing_ok=True))
        phase("MySQL crash + restart", lambda: mysql.crash_and_restart())
        load.phase = "after faults"
        time.sleep(PHASE_SECONDS / 2)
    finally:
        load.finish()
        outage_file.unlink(missing_ok=True)
    log(
        f"load stopped: {len(load.accepted)} orders accepted, responses {load.statuses}, broken requests {load.errors}"
    )

    deadline = time.monotonic() + SETTLE_TIMEOUT
    working = None
    while time.monotonic() < deadline:
        try:
            working = query(
                env,
                "import json; from orders.models import Order;"
                "print(json.dumps(Order.objects.filter(status__in=Order.WORKING_STATUSES).count()))",
            )
        except subprocess.CalledProcessError:
            working = None
        if working == 0:
            break
        log(f"waiting: {working} orders still working; sweeping")
        subprocess.run(
            [PY, "manage.py", "sweep_orders", "--wait", "20"], cwd=ROOT, env=env, capture_output=True
        )
        time.sleep(5)

    report = query(
        env,
        "import json; from django.db.models import Count;"
        "from orders.models import Order; from exchange.models import ExchangeOrder;"
        "rows = {str(o.pk): [o.status, (o.updated_at - o.created_at).total_seconds(), o.placed_quantity]"
        " for o in Order.objects.all()};"
        "ledger = {str(k): v for k, v in ExchangeOrder.objects.values_list('order_id', 'quantity')};"
        "dup_keys = Order.objects.values('owner', 'client_order_id').annotate(n=Count('pk')).filter(n__gt=1).count();"
        "print(json.dumps({'rows': rows, 'ledger': ledger, 'dup_keys': dup_keys}))",
    )
    web.stop()
    cluster.stop()
    shutil.rmtree(metrics_dir, ignore_errors=True)

    rows, ledger = report["rows"], report["ledger"]
    table = []
    totals = {"accepted": 0, "lost": 0, "working": 0, "failed": 0, "duplicates": 0}
    for name in ["warm-up", *faults, "after faults"]:
        ids = [order_id for order_id, phase_name in load.accepted.values() if phase_name == name]
        lost = [i for i in ids if i not in rows]
        present = [rows[i] for i in ids if i in rows]
        working_now = sum(1 for status, _, _ in present if status in ("OPEN", "PARTIAL"))
        failed = sum(1 for status, _, _ in present if status == "FAILED")
        duplicates = sum(1 for i in ids if i in rows and rows[i][2] and ledger.get(i) != rows[i][2])
        settle = max(
            (seconds for status, seconds, _ in present if status not in ("OPEN", "PARTIAL")), default=0
        )
        table.append((name, len(ids), len(present) - working_now, failed, len(lost), duplicates, settle))
        totals["accepted"] += len(ids)
        totals["lost"] += len(lost) + working_now
        totals["failed"] += failed
        totals["duplicates"] += duplicates
    # Placed twice is impossible by construction (unique ledger row per order); this
    # checks the other half: every placed quantity is what the exchange holds.
    placed_not_in_ledger = sum(1 for i, (_, _, placed) in rows.items() if placed and i not in ledger)
    totals["duplicates"] += report["dup_keys"] + placed_not_in_ledger

    print()
    print(f"{'fault':<26}{'accepted':>9}{'settled':>9}{'failed':>8}{'lost':>6}{'dup':>5}{'max settle s':>14}")
    for name, accepted, settled, failed, lost, duplicates, settle in table:
        print(f"{name:<26}{accepted:>9}{settled:>9}{failed:>8}{lost:>6}{duplicates:>5}{settle:>14.1f}")
    print(
        f"{'total':<26}{totals['accepted']:>9}{totals['accepted'] - totals['lost']:>9}{totals['failed']:>8}"
        f"{totals['lost']:>6}{totals['duplicates']:>5}"
    )
    print(
        f"duplicate client_order_ids: {report['dup_keys']}, placed but unknown to the exchange: {placed_not_in_ledger}"
    )

    clean = check_invariants(env, label_width=0)
    ok = totals["lost"] == 0 and totals["duplicates"] == 0 and clean and totals["accepted"] > 0
    print("chaos: PASS" if ok else "chaos: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
