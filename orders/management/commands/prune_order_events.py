"""Delete order events older than a given age (SPEC §10 retention; ``ORDER_EVENTS_RETENTION``)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orders.events import order_events_prune, parse_duration


class Command(BaseCommand):
    help = (
        "Delete order events older than --older-than (default ORDER_EVENTS_RETENTION). A stream "
        "resuming from a pruned id gets an `event: pruned` naming the oldest id still available."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            metavar="AGE",
            default=None,
            help="e.g. 7d, 12h, 90m, 30s (default: ORDER_EVENTS_RETENTION).",
        )

    def handle(self, *args, older_than=None, **options):
        text = older_than or settings.ORDER_EVENTS_RETENTION
        try:
            age = parse_duration(text)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        deleted, through = order_events_prune(older_than=age)
        if deleted:
            self.stdout.write(f"Pruned {deleted} order events older than {text} (every id up to {through}).")
        else:
            self.stdout.write(f"No order events older than {text}.")
