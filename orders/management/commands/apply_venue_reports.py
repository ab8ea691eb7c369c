"""``python manage.py apply_venue_reports``: apply the venue's stored reports to our orders (SPEC §9).

``run_gateway`` stores every inbound report; this applies them, batch after batch,
in commit order, one transaction per batch that also moves the cursor
(``orders/venue.py``). It runs as ``run_gateway``'s child process by default
(``GATEWAY_REPORT_APPLIER``), so applying has an interpreter of its own and never
holds up reading the socket: the gateway writes a byte to its stdin after every
commit that stored reports, and the child ends when its stdin closes (the gateway
is gone, however it went). Run on its own it polls. Several at once are safe (the
cursor row is locked per batch), but one is all it takes.

SIGTERM or SIGINT: the batch under way commits, then it exits.
"""

import logging
import os
import select
import signal
import sys
import time

from django.core.management.base import BaseCommand
from django.db import connection

from orders import venue
from ordersite.db import close_stale_connections

logger = logging.getLogger("orders.venue")

# How long it waits for a wake-up before it looks anyway; the delay after a failed batch.
POLL_INTERVAL = 0.2
RETRY_DELAY = 1.0
# The least time from one batch's start to the next unless a full batch is waiting: a
# batch costs a few statements per order it touches however few reports it holds, so
# reports trickling in are taken ten times a second, not one commit of the gateway at a time.
BATCH_SPACING = 0.1


class Command(BaseCommand):
    help = "Apply the venue's stored execution reports to our orders, batch after batch."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Apply what is stored now, then exit.")
        parser.add_argument(
            "--wake-on-stdin",
            action="store_true",
            help="As run_gateway's child: a byte on stdin wakes it, end of stdin stops it.",
        )

    def handle(self, *args, once=False, wake_on_stdin=False, **options):
        self.stopping = False
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        wake_fd = sys.stdin.fileno() if wake_on_stdin else None
        applied = 0
        while not self.stopping:
            started = time.monotonic()
            try:
                close_stale_connections()
                batch = venue.reports_apply_pending(limit=venue.APPLY_BATCH).reports
            except Exception:
                if once:
                    raise
                logger.exception("applying stored venue reports failed; retrying")
                connection.close()
                time.sleep(RETRY_DELAY)
                continue
            applied += batch
            if batch == venue.APPLY_BATCH:
                continue  # more are waiting
            if once or not self._wait(wake_fd):
                break
            time.sleep(max(0.0, started + BATCH_SPACING - time.monotonic()))
        connection.close()
        if once:
            self.stdout.write(f"{applied} reports applied")

    def _wait(self, wake_fd: int | None) -> bool:
        """Until a wake-up or ``POLL_INTERVAL``; False when the gateway's end of the pipe closed."""
        if wake_fd is None:
            time.sleep(POLL_INTERVAL)
            return True
        readable, _, _ = select.select([wake_fd], [], [], POLL_INTERVAL)
        if readable and not os.read(wake_fd, 65536):
            logger.info("apply_venue_reports: run_gateway is gone; stopping")
            return False
        return True

    def _stop(self, signum, frame) -> None:
        self.stopping = True
