"""Re-drive stalled orders now, instead of waiting for the scheduled sweep."""

from django.core.management.base import BaseCommand

from orders.dispatcher import get_dispatcher
from orders.pipeline import pipeline_sweep


class Command(BaseCommand):
    help = (
        "Run the sweeper once: re-match, re-route, or ask the exchange about, every working order without "
        "progress for PIPELINE_STALL_TIMEOUT seconds, and wait for the exchange calls it starts."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--wait", type=float, default=60.0, help="Seconds to wait for the placements it starts."
        )

    def handle(self, *args, wait, **options):
        report = pipeline_sweep()
        self.stdout.write(f"Sweep: {report}.")
        if not get_dispatcher().wait_idle(timeout=wait):
            self.stdout.write(self.style.WARNING(f"Placements still running after {wait:g}s."))
