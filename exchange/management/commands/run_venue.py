"""``python manage.py run_venue``: the simulated exchange as a FIX 4.4 acceptor (SPEC §9)."""

import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from exchange.fix.session import Faults
from exchange.venue.server import VenueProcess, run
from exchange.venue.venue import VenueConfig


class Command(BaseCommand):
    help = "Run the simulated exchange: a FIX 4.4 acceptor on VENUE_HOST:VENUE_PORT, journal in VENUE_DB."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=None, help="Listen address (VENUE_HOST, 127.0.0.1).")
        parser.add_argument("--port", type=int, default=None, help="Listen port (VENUE_PORT, 9878).")
        parser.add_argument("--db", default=None, help="Journal SQLite file (VENUE_DB, var/venue.sqlite3).")
        parser.add_argument(
            "--firehose",
            type=int,
            default=0,
            metavar="N",
            help="Fill every order one share at a time, N execution reports a second overall (benchmarks).",
        )
        parser.add_argument("--seed", type=int, default=None, help="Seed the simulation (reproducible runs).")

    def handle(self, *args, **options):
        try:
            faults = Faults.parse(settings.VENUE_FAULTS)
        except ValueError as error:
            raise CommandError(f"VENUE_FAULTS={settings.VENUE_FAULTS!r}: {error}") from None
        if options["firehose"] < 0:
            raise CommandError("--firehose must be 0 (off) or a rate in reports a second")
        for name in ("VENUE_FILL_INTERVAL", "VENUE_DAY_SECONDS"):
            if getattr(settings, name) <= 0:
                raise CommandError(f"{name} must be above 0")
        if settings.VENUE_MAX_FILLS < 1:
            raise CommandError("VENUE_MAX_FILLS must be at least 1")
        if not 0 <= settings.EXCHANGE_FAILURE_RATE <= 1 or settings.EXCHANGE_LATENCY < 0:
            raise CommandError("EXCHANGE_FAILURE_RATE must be in 0..1 and EXCHANGE_LATENCY at least 0")
        process = VenueProcess(
            host=options["host"] or settings.VENUE_HOST,
            port=options["port"] if options["port"] is not None else settings.VENUE_PORT,
            db=options["db"] or str(settings.VENUE_DB),
            comp_id=settings.VENUE_COMP_ID,
            client_comp_id=settings.VENUE_CLIENT_COMP_ID,
            faults=faults,
            config=VenueConfig(
                latency=settings.EXCHANGE_LATENCY,
                failure_rate=settings.EXCHANGE_FAILURE_RATE,
                max_fills=settings.VENUE_MAX_FILLS,
                fill_interval=settings.VENUE_FILL_INTERVAL,
                day_seconds=settings.VENUE_DAY_SECONDS,
                firehose=options["firehose"],
                seed=options["seed"],
            ),
        )

        def ready(server):
            sockets = ", ".join(str(sock.getsockname()[:2]) for sock in server.sockets)
            self.stdout.write(
                f"Venue {process.comp_id} listening on {sockets} for {process.client_comp_id}; "
                f"journal {process.db}",
            )
            self.stdout.flush()

        try:
            asyncio.run(run(process, ready=ready))
        except OSError as error:
            raise CommandError(f"cannot listen on {process.host}:{process.port}: {error}") from None
