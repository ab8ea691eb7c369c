"""The order event stream under load (SPEC §10, issue 10), on loopback, bounded in time.

    DATABASE_URL=mysql://root@127.0.0.1:3306/orders_bench .venv/bin/python -m bench.events

Starts the service as ``make run`` does (uvicorn, ``WEB_WORKERS`` processes, and a django-q2
cluster with the in-process exchange), then measures:

1. POST /orders throughput (wrk) with no stream open;
2. ``--streams`` (1,000) idle streams held open: the web processes' RSS before and after,
   per stream; then POST /orders again with them all open (target >= 0.9x);
3. delivery latency from commit to client: a writer commits ``--rate`` (1,000) events a
   second (directly into the log, ten per transaction, each stamped with the time just
   before its COMMIT) for ``--seconds``, followed by ``--followers`` (100) streams:
   ``own`` mode, each stream a client following its own orders (the events spread over
   the 100 clients: 1,000 deliveries/s), and ``staff`` mode, every stream a staff
   member seeing every event (100,000 deliveries/s). p50/p99/max per mode (target
   p99 <= 250 ms in ``own`` mode).

The machine is shared (2 cores, other engineers' work): numbers are noisy, and the
client side of this benchmark competes with the server for the same cores.
"""

import argparse
import asyncio
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from bench.common import GUNICORN, PY, ROOT, ProcessGroup, api_token, free_port, manage
from bench.run import FIXED_BODY_LUA, wait_http, wrk

# Not bench/run.py's port: other runs on this machine may hold it.
PORT = int(os.environ.get("BENCH_EVENTS_PORT", "0")) or free_port()
WEB_WORKERS = int(os.environ.get("BENCH_WEB_WORKERS", "2"))
API_SECONDS = int(os.environ.get("BENCH_API_SECONDS", "10"))
API_CONNECTIONS = int(os.environ.get("BENCH_API_CONNECTIONS", "8"))
STAMP = re.compile(rb'"t": ?([0-9.]+)')

WRITER = """
import os, sys, time, uuid, json
import django
django.setup()
from django.db import transaction
from orders.events import events_insert
from orders.models import OrderEvent
owners = [int(x) for x in sys.argv[1].split(",")]
rate, seconds, per_tx = float(sys.argv[2]), float(sys.argv[3]), 10
order_ids = [uuid.uuid4() for _ in range(500)]
interval = per_tx / rate
start = time.monotonic()
n = 0
while time.monotonic() - start < seconds:
    due = start + (n // per_tx) * interval
    pause = due - time.monotonic()
    if pause > 0:
        time.sleep(pause)
    with transaction.atomic():
        stamp = time.time()
        events_insert([
            OrderEvent(order_id=order_ids[(n + i) % 500], owner_id=owners[(n + i) % len(owners)],
                       name="partially_filled", instrument="US0378331005", status="PARTIALLY_FILLED",
                       payload=json.dumps({"id": str(order_ids[(n + i) % 500]), "t": stamp}))
            for i in range(per_tx)
        ])  # as the transitions insert them: with REDIS_URL, a wake-up on commit
    n += per_tx
print(n)
"""


def log(message: str) -> None:
    print(message, flush=True)


def rss_kb(root_pid: int) -> int:
    """Resident memory of a process group's processes (the uvicorn supervisor and its workers)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != root_pid:  # process group id
                continue
            with open(f"/proc/{pid}/status") as fh:
                total += next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
        except (OSError, StopIteration, IndexError, ValueError):
            continue
    return total


async def open_stream(token: str, query: str = ""):
    reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
    writer.write(
        f"GET /orders/events{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"stream refused: {status!r}")
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    return reader, writer


async def hold_idle_streams(token: str, count: int, web: ProcessGroup):
    """Open ``count`` streams (50 at a time); return them and the RSS growth per stream."""
    before = rss_kb(web.process.pid)
    streams = []
    for start in range(0, count, 50):
        streams += await asyncio.gather(*(open_stream(token) for _ in range(min(50, count - start))))
    await asyncio.sleep(3)  # let the workers settle
    after = rss_kb(web.process.pid)
    return streams, before, after


async def follow_and_measure(tokens: list[str], seconds: float, rate: float, owners: list[int], env: dict):
    streams = await asyncio.gather(*(open_stream(token) for token in tokens))
    latencies: list[float] = []
    received = [0]
    stop = asyncio.Event()

    async def drain(reader, sample: bool):
        buffer = b""
        while not stop.is_set():
            try:
                chunk = await asyncio.wait_for(reader.read(65536), timeout=0.5)
            except TimeoutError:
                continue
            if not chunk:
                return
            now = time.time()
            if sample:
                buffer += chunk
                *complete, buffer = buffer.split(b"\n\n")
                for message in complete:
                    match = STAMP.search(message)
                    if match:
                        latencies.append(now - float(match.group(1)))
                        received[0] += 1

    # Every stream is drained; every tenth is parsed for its stamps (the client shares the cores).
    tasks = [asyncio.create_task(drain(reader, n % 10 == 0)) for n, (reader, _) in enumerate(streams)]
    writer = await asyncio.create_subprocess_exec(
        PY,
        "-c",
        WRITER,
        ",".join(map(str, owners)),
        str(rate),
        str(seconds),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
    )
    written = int((await writer.communicate())[0].strip() or 0)
    await asyncio.sleep(2)  # the last events arrive
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    for _, w in streams:
        w.close()
    return written, latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report_latency(label: str, written: int, latencies: list[float], expected_per_sampled: float) -> None:
    if not latencies:
        log(f"{label}: no events received")
        return
    ms = [v * 1000 for v in latencies]
    log(
        f"{label}: {written} events committed, {len(ms)} deliveries timed on the sampled streams "
        f"(expected ~{expected_per_sampled:.0f}); commit->client p50 {statistics.median(ms):.0f} ms, "
        f"p99 {percentile(ms, 0.99):.0f} ms, max {max(ms):.0f} ms"
    )


def compare_gunicorn(env: dict, token: str, uvicorn_result: dict) -> None:
    port = free_port()
    gunicorn = ProcessGroup(
        "bench-events-gunicorn",
        [GUNICORN, "ordersite.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(WEB_WORKERS)],
        {**env, "DJANGO_SETTINGS_MODULE": "bench.settings"},
    )
    try:
        gunicorn.start()
        wait_http(f"http://127.0.0.1:{port}/healthz")
        wrk(f"http://127.0.0.1:{port}/orders", token, 3, API_CONNECTIONS, FIXED_BODY_LUA)
        result = wrk(f"http://127.0.0.1:{port}/orders", token, API_SECONDS, API_CONNECTIONS, FIXED_BODY_LUA)
        log(
            f"POST /orders under gunicorn WSGI : {result['rps']:8.1f} req/s  p50 {result['p50']}"
            f"  p99 {result['p99']}  (uvicorn ASGI / gunicorn: {uvicorn_result['rps'] / result['rps']:.2f}x)"
        )
    finally:
        gunicorn.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--followers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--modes", default="own,staff")
    parser.add_argument(
        "--compare-gunicorn",
        action="store_true",
        help="also measure POST /orders under gunicorn's WSGI workers (what make run used before)",
    )
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.streams + 1000)), hard))

    metrics_dir = tempfile.mkdtemp(prefix="orders-metrics-")
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        "API_THROTTLE_USER": "off",
        "Q_WORKERS": os.environ.get("Q_WORKERS", "1"),
        "EXCHANGE_TRANSPORT": "inprocess",
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "LOG_LEVEL": "WARNING",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    base = f"http://127.0.0.1:{PORT}"
    log(
        f"== Order event stream: {os.cpu_count()} cores (shared: noisy), {WEB_WORKERS} uvicorn workers, "
        f"database {env['DATABASE_URL'].split('@')[-1]}, "
        f"REDIS_URL {'set' if env.get('REDIS_URL') else 'unset (shared poll)'}"
    )
    manage(env, "migrate", "--noinput", "-v0")
    token = api_token(env, "bench")
    idle_token = api_token(env, "bench-idle")
    web = ProcessGroup(
        "bench-events-web",
        [
            PY,
            "-m",
            "uvicorn",
            "ordersite.asgi:application",
            "--port",
            str(PORT),
            "--workers",
            str(WEB_WORKERS),
            "--no-access-log",
            "--lifespan",
            "off",
            "--backlog",
            "4096",
        ],
        env,
    )
    cluster = ProcessGroup("bench-events-cluster", [PY, "manage.py", "qcluster"], env)
    try:
        web.start()
        cluster.start()
        wait_http(f"{base}/healthz")
        time.sleep(2)
        wrk(f"{base}/orders", token, 3, API_CONNECTIONS, FIXED_BODY_LUA)  # warm-up
        without = wrk(f"{base}/orders", token, API_SECONDS, API_CONNECTIONS, FIXED_BODY_LUA)
        log(
            f"POST /orders, no stream open     : {without['rps']:8.1f} req/s  p50 {without['p50']}"
            f"  p99 {without['p99']}"
        )

        if args.compare_gunicorn:
            compare_gunicorn(env, token, without)

        loop = asyncio.new_event_loop()
        streams, before, after = loop.run_until_complete(hold_idle_streams(idle_token, args.streams, web))
        log(
            f"{args.streams} idle streams held     : web RSS {before / 1024:.0f} MiB -> "
            f"{after / 1024:.0f} MiB, "
            f"{(after - before) / args.streams:.1f} KiB per stream"
        )
        with_streams = wrk(f"{base}/orders", token, API_SECONDS, API_CONNECTIONS, FIXED_BODY_LUA)
        alive = sum(1 for reader, _ in streams if not reader.at_eof())
        log(
            f"POST /orders, {args.streams} streams open : {with_streams['rps']:8.1f} req/s"
            f"  p50 {with_streams['p50']}"
            f"  p99 {with_streams['p99']}  ratio {with_streams['rps'] / without['rps']:.2f}x"
            " (target >= 0.90x); "
            f"{alive} streams still open"
        )
        for _, writer in streams:
            writer.close()
        cluster.stop()  # the delivery runs measure the stream, not the pipeline
        time.sleep(1)

        for mode in args.modes.split(","):
            users = [f"bench-follow-{mode}-{n}" for n in range(args.followers)]
            code = (
                "import json; from django.contrib.auth.models import User;"
                "from rest_framework.authtoken.models import Token;"
                f"staff = {mode == 'staff'}; out = []\n"
                f"for name in {users!r}:\n"
                "    u, _ = User.objects.get_or_create(username=name, defaults={'is_staff': staff})\n"
                "    out.append([u.pk, Token.objects.get_or_create(user=u)[0].key])\n"
                "print(json.dumps(out))"
            )
            rows = json.loads(manage(env, "shell", "-v0", "-c", code).strip().splitlines()[-1])
            owners = [pk for pk, _ in rows]
            tokens = [key for _, key in rows]
            written, latencies = loop.run_until_complete(
                follow_and_measure(tokens, args.seconds, args.rate, owners, env)
            )
            sampled = len(range(0, args.followers, 10))
            expected = written / args.followers * sampled if mode == "own" else written * sampled
            report_latency(
                f"{mode:5} mode, {args.followers} streams, {args.rate:.0f} ev/s", written, latencies, expected
            )
        loop.close()
        return 0
    finally:
        web.stop()
        cluster.stop()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
