"""``python manage.py run_gateway``: our FIX session to the venue (SPEC §9).

Initiator to VENUE_HOST:VENUE_PORT; stores every inbound report in our database with
the sequence number that counts it, sends the outbox, reconciles on logon, keeps the
report applier (``GATEWAY_REPORT_APPLIER``) running as its child, and logs out
cleanly on SIGTERM/SIGINT.
"""

import asyncio
import os
import signal

from django.conf import settings
from django.core.management import get_commands
from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string

from exchange.fix_gateway import Gateway, GatewayConfig


class Command(BaseCommand):
    help = "Hold our FIX session to the venue: durable ingest of reports, durable outbox, reconcile on logon."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=None, help="Venue address (VENUE_HOST, 127.0.0.1).")
        parser.add_argument("--port", type=int, default=None, help="Venue port (VENUE_PORT, 9878).")

    def handle(self, *args, **options):
        hook = None
        if settings.GATEWAY_RECONCILE_HOOK:
            try:
                hook = import_string(settings.GATEWAY_RECONCILE_HOOK)
            except ImportError as error:
                raise CommandError(f"GATEWAY_RECONCILE_HOOK: {error}") from None
        applier = settings.GATEWAY_REPORT_APPLIER
        if applier and applier not in get_commands():
            raise CommandError(f"GATEWAY_REPORT_APPLIER: no manage.py command {applier!r}")
        if settings.GATEWAY_HEARTBEAT_INTERVAL < 1 or settings.GATEWAY_OUTBOX_BATCH < 1:
            raise CommandError("GATEWAY_HEARTBEAT_INTERVAL and GATEWAY_OUTBOX_BATCH must be at least 1")
        if settings.GATEWAY_RECONNECT_BASE <= 0 or settings.GATEWAY_OUTBOX_POLL <= 0:
            raise CommandError("GATEWAY_RECONNECT_BASE and GATEWAY_OUTBOX_POLL must be above 0")
        config = GatewayConfig(
            host=options["host"] or settings.VENUE_HOST,
            port=options["port"] if options["port"] is not None else settings.VENUE_PORT,
            sender_comp_id=settings.VENUE_CLIENT_COMP_ID,
            target_comp_id=settings.VENUE_COMP_ID,
            heartbeat_interval=settings.GATEWAY_HEARTBEAT_INTERVAL,
            reconnect_base=settings.GATEWAY_RECONNECT_BASE,
            reconnect_cap=max(settings.GATEWAY_RECONNECT_CAP, settings.GATEWAY_RECONNECT_BASE),
            poll_interval=settings.GATEWAY_OUTBOX_POLL,
            batch=settings.GATEWAY_OUTBOX_BATCH,
            reconcile_hook=hook,
            report_applier=applier,
        )
        # The gateway calls the ORM from its event loop on purpose: one thread, and a
        # blocking commit is what batches the next read (docs/decisions.md, "FIX gateway").
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        asyncio.run(self._run(config))

    async def _run(self, config: GatewayConfig) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        gateway = Gateway(config)
        self.stdout.write(
            f"Gateway {config.sender_comp_id} -> {config.target_comp_id} at {config.host}:{config.port}; "
            f"session {config.session_name} next in {gateway.store.next_inbound_seq()} "
            f"out {gateway.store.next_outbound_seq()}"
        )
        self.stdout.flush()
        await gateway.run(stop)
        self.stdout.write("Gateway stopped")
