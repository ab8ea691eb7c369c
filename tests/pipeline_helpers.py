"""Helpers for pipeline tests: run what is really in the queue, build exchanges, run a cluster, wait."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.db import connection
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from exchange.gateway import OrderPlacementError, SimulatedExchange
from orders.invariants import invariant_violations
from orders.models import Order


def run_queued_tasks() -> int:
    """Execute (in this process) and acknowledge every task in the ORM queue, oldest first."""
    from django.utils.module_loading import import_string

    ran = 0
    for row in OrmQ.objects.order_by("id"):
        task = SignedPackage.loads(row.payload)
        func = task["func"]
        func = import_string(func) if isinstance(func, str) else func
        func(*task["args"], **task["kwargs"])
        row.delete()
        ran += 1
    return ran


class ScriptedExchange(SimulatedExchange):
    """The simulated exchange (real ledger), failing the first ``failures`` placements
    and the first ``status_failures`` status questions."""

    def __init__(self, failures: int = 0, error=OrderPlacementError, status_failures: int = 0):
        super().__init__(latency=0, failure_rate=0)
        self.failures = failures
        self.error = error
        self.calls = 0
        self.status_failures = status_failures
        self.status_calls = 0

    def place_order(self, order):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"Failed to place order {order.id}: Connection not available")
        return super().place_order(order)

    def order_status(self, order_id):
        self.status_calls += 1
        if self.status_calls <= self.status_failures:
            raise OrderPlacementError(f"Failed to query order {order_id}: Connection not available")
        return super().order_status(order_id)


def wait_until_settled(timeout: float, poll: float = 0.1) -> list[Order]:
    """Wait until no order is working; return the ones still working at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        working = list(Order.objects.filter(status__in=Order.WORKING_STATUSES))
        if not working or time.monotonic() > deadline:
            return working
        time.sleep(poll)


def assert_invariants() -> None:
    violations = invariant_violations()
    assert violations == [], "\n".join(violations)


class ConcurrencyProbe(SimulatedExchange):
    """The simulated exchange, recording how many calls were in flight at once."""

    lock = threading.Lock()
    in_flight = 0
    peak = 0

    def place_order(self, order):
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.peak = max(cls.peak, cls.in_flight)
        try:
            return super().place_order(order)
        finally:
            with cls.lock:
                cls.in_flight -= 1


ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """The test database, for processes started by a test (which must be ``transaction=True``)."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"mysql://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 3306}/{db['NAME']}"


class ProcessGroupChild:
    """A process started in its own process group (``self.process``), killable like a crashed host."""

    process = None
    stop_timeout = 15

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.kill()


class Cluster(ProcessGroupChild):
    """`manage.py qcluster` in its own process group, killable like a crashed host."""

    def __init__(self, **env):
        self.env = {
            **os.environ,
            # Production settings (not the test overrides), configured by environment.
            "DJANGO_SETTINGS_MODULE": "ordersite.settings",
            "DATABASE_URL": database_url(),
            "EXCHANGE_TRANSPORT": "inprocess",
            "Q_WORKERS": "2",
            "EXCHANGE_LATENCY": "0.05",
            "MATCHING_WINDOW": "0.05",
            "EXCHANGE_RETRY_BASE": "0.05",
            "EXCHANGE_RETRY_CAP": "0.2",
            "LOG_LEVEL": "WARNING",
            "PIPELINE_STALL_TIMEOUT": "2",
            **{key: str(value) for key, value in env.items()},
        }
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=self.env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebServer(ProcessGroupChild):
    """The ASGI application under uvicorn on the test database, killable like a crashed host."""

    stop_timeout = 10

    def __init__(self, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "ordersite.settings",
            "DATABASE_URL": database_url(),
            "EXCHANGE_TRANSPORT": "inprocess",
            "LOG_LEVEL": "WARNING",
            "API_THROTTLE_USER": "off",
            **{key: str(value) for key, value in env.items()},
        }
        self.process = None

    def start(self, timeout: float = 30) -> "WebServer":
        import urllib.error
        import urllib.request

        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "ordersite.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--lifespan",
                "off",
            ],
            cwd=ROOT,
            env=self.env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/healthz", timeout=1).read()
                return self
            except urllib.error.HTTPError:  # answering (a 503 without a cluster is fine here)
                return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("uvicorn exited at start") from None
                time.sleep(0.1)
        raise RuntimeError("uvicorn did not answer /healthz")
