"""Execution reports a second from ``run_venue --firehose N``, received by a FIX client.

Starts the venue on a free port with a throwaway journal, logs on with our session
layer as the initiator, sends a few large orders and counts the execution reports
that arrive, second by second. Run: ``.venv/bin/python -m bench.venue_firehose``.
"""

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import free_port
from exchange.fix.codec import MsgType, Tag
from exchange.fix.session import INITIATOR, MemorySessionStore, Session, connect

ROOT = Path(__file__).resolve().parent.parent


async def measure(port: int, orders: int, seconds: float) -> list[int]:
    """Reports received in each whole second of wall-clock time, over ``seconds``."""
    buckets = [0] * (int(seconds) + 2)
    start = [0.0]

    def on_app(message):
        if message.msg_type == MsgType.ExecutionReport and start[0]:
            index = int(time.monotonic() - start[0])
            if index < len(buckets):
                buckets[index] += 1

    session = Session(
        sender_comp_id="BROKER",
        target_comp_id="VENUE",
        store=MemorySessionStore(),
        role=INITIATOR,
        on_app=on_app,
        heartbeat_interval=30,
        schedule=asyncio.get_running_loop().call_soon,
    )
    task = await connect(session, "127.0.0.1", port)
    while not session.logged_on:
        await asyncio.sleep(0.01)
    for n in range(orders):
        body = [
            (Tag.ClOrdID, f"bench-{n}"),
            (Tag.Symbol, "US0378331005"),
            (Tag.Side, "1" if n % 2 else "2"),
            (Tag.OrderQty, 100_000_000),
            (Tag.OrdType, "1"),
            (Tag.TimeInForce, "1"),
            (Tag.TransactTime, "20260101-00:00:00.000"),
        ]
        session.send(MsgType.NewOrderSingle, body)
    await asyncio.sleep(1.0)  # orders accepted, the stream is running
    start[0] = time.monotonic()
    await asyncio.sleep(seconds + 0.5)
    session.logout("bench done")
    await asyncio.sleep(0.2)
    task.cancel()
    return buckets[: int(seconds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=6000, help="the venue's --firehose N")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--orders", type=int, default=20)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="venue-firehose-") as tmp:
        env = {
            **os.environ,
            "DJANGO_SECRET_KEY": "bench",
            "VAR_DIR": tmp,
            "EXCHANGE_LATENCY": "0.01",
            "EXCHANGE_FAILURE_RATE": "0",
            "LOG_LEVEL": "WARNING",
        }
        command = [
            sys.executable,
            "manage.py",
            "run_venue",
            "--port",
            str(port),
            "--db",
            f"{tmp}/venue.sqlite3",
        ]
        venue = subprocess.Popen(
            [*command, "--firehose", str(args.rate)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            if "listening" not in venue.stdout.readline():
                raise SystemExit("the venue did not start")
            started = time.process_time()
            per_second = asyncio.run(measure(port, args.orders, args.seconds))
            client_cpu = time.process_time() - started
        finally:
            venue.send_signal(signal.SIGTERM)
            venue.wait(10)
    total = sum(per_second)
    print(f"firehose N={args.rate}: per second {per_second}")
    print(
        f"received {total} execution reports in {len(per_second)} s: {total / len(per_second):.0f} reports/s "
        f"(min {min(per_second)}/s; client CPU {client_cpu:.1f} s)"
    )


if __name__ == "__main__":
    main()
