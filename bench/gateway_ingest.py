"""Execution reports a second that ``run_gateway`` stores in our database, and their lag.

Starts ``run_venue --firehose N`` on a free port with a throwaway journal and
``run_gateway`` on ``DATABASE_URL`` (MySQL/MariaDB; migrated first) with CompIDs of
its own, writes a few large orders to the outbox, then counts the reports committed
each second for ``--seconds`` and the lag from each report's TransactTime to its
commit (``received_at`` is stamped when the commit starts). Run:
``DATABASE_URL=mysql://… .venv/bin/python -m bench.gateway_ingest --rate 6000``.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import django

from bench.common import cpu_seconds

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=6000, help="the venue's --firehose N")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--orders", type=int, default=20)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("mysql"):
        raise SystemExit("set DATABASE_URL=mysql://… (the gateway's store is MySQL/MariaDB)")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ordersite.settings")
    django.setup()
    from django.core.management import call_command
    from django.db.models import Max

    from exchange.models import ExecutionReportRecord
    from exchange.services import outbox_new_order
    from tests.venue.harness import free_port

    call_command("migrate", verbosity=0)
    port = free_port()
    client = f"BENCH{int(time.time())}"
    with tempfile.TemporaryDirectory(prefix="gateway-ingest-") as tmp:
        env = {
            **os.environ,
            "VAR_DIR": tmp,
            "PROMETHEUS_MULTIPROC_DIR": f"{tmp}/prometheus",
            "EXCHANGE_LATENCY": "0.01",
            "EXCHANGE_FAILURE_RATE": "0",
            "VENUE_CLIENT_COMP_ID": client,
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        }
        venue = subprocess.Popen(
            [sys.executable, "manage.py", "run_venue", "--port", str(port), "--db", f"{tmp}/venue.sqlite3"]
            + ["--firehose", str(args.rate)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        gateway = None
        try:
            if "listening" not in venue.stdout.readline():
                raise SystemExit("the venue did not start")
            gateway = subprocess.Popen(
                [sys.executable, "manage.py", "run_gateway", "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            gateway.stdout.readline()
            floor = ExecutionReportRecord.objects.aggregate(top=Max("id"))["top"] or 0
            for n in range(args.orders):
                outbox_new_order(
                    cl_ord_id=f"{client}-{n}",
                    symbol="US0378331005",
                    side="buy" if n % 2 else "sell",
                    quantity=100_000_000,
                    ord_type="market",
                    time_in_force="gtc",
                )
            deadline = time.monotonic() + 30
            while not ExecutionReportRecord.objects.filter(id__gt=floor + args.orders).exists():
                if time.monotonic() > deadline:
                    raise SystemExit("no reports stored within 30 s")
                time.sleep(0.1)
            time.sleep(2)  # the stream is running
            start_id = ExecutionReportRecord.objects.aggregate(top=Max("id"))["top"]
            gateway_cpu, venue_cpu = cpu_seconds(gateway.pid), cpu_seconds(venue.pid)
            per_second = []
            last = start_id
            started = time.monotonic()
            for second in range(1, args.seconds + 1):
                time.sleep(max(0.0, started + second - time.monotonic()))
                top = ExecutionReportRecord.objects.aggregate(top=Max("id"))["top"] or last
                per_second.append(top - last)
                last = top
            gateway_cpu = cpu_seconds(gateway.pid) - gateway_cpu
            venue_cpu = cpu_seconds(venue.pid) - venue_cpu
            lags = [
                (received - transact).total_seconds()
                for transact, received in ExecutionReportRecord.objects.filter(
                    id__gt=start_id, id__lte=last, transact_time__isnull=False
                ).values_list("transact_time", "received_at")
            ]
        finally:
            for process in (gateway, venue):
                if process is not None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(15)
    total = sum(per_second)
    print(f"firehose N={args.rate}, {args.orders} orders; stored per second: {per_second}")
    print(
        f"stored {total} reports in {len(per_second)} s: {total / len(per_second):.0f} reports/s sustained "
        f"(min {min(per_second)}/s); CPU in the window: gateway {gateway_cpu:.1f} s, venue {venue_cpu:.1f} s"
    )
    if lags:
        print(
            f"lag TransactTime -> commit: p50 {percentile(lags, 50) * 1000:.0f} ms, "
            f"p99 {percentile(lags, 99) * 1000:.0f} ms, max {max(lags) * 1000:.0f} ms ({len(lags)} reports)"
        )


if __name__ == "__main__":
    main()
