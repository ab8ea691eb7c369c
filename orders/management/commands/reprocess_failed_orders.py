"""Put FAILED orders back to work (SPEC §7), one ``order_reprocess`` call per order.

Safe to run twice or from two shells at once: the service locks each order and
refuses any that is no longer FAILED, which this command reports as skipped.
"""

import uuid
from datetime import datetime, time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from tqdm import tqdm

from orders.errors import OrderError
from orders.isin import is_valid_isin
from orders.models import Order
from orders.services import order_reprocess

# A progress bar only where there is something to watch.
PROGRESS_ABOVE = 50
BATCH_SIZE = 500


class Command(BaseCommand):
    help = (
        "Reprocess FAILED orders: their unfilled quantity goes back to matching and the exchange. "
        "Without --id, every FAILED order matching the filters is taken."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--id",
            dest="ids",
            action="append",
            default=[],
            metavar="ORDER_ID",
            help="Only this order (UUID); repeat for several.",
        )
        parser.add_argument("--instrument", metavar="ISIN", help="Only orders of this instrument.")
        parser.add_argument(
            "--since",
            metavar="WHEN",
            help="Only orders that failed at or after this ISO date or datetime (naive means UTC).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Print what would be reprocessed; change nothing."
        )

    def handle(self, *args, ids, instrument, since, dry_run, **options):
        order_ids = [_parse_order_id(value) for value in ids]
        instrument = _parse_instrument(instrument) if instrument is not None else None
        since = _parse_since(since) if since is not None else None

        selected = self._select(order_ids, instrument, since)
        bar = self._progress_bar(len(selected))
        reprocessed = skipped = 0
        try:
            for batch_start in range(0, len(selected), BATCH_SIZE):
                batch = selected[batch_start : batch_start + BATCH_SIZE]
                orders = Order.objects.in_bulk([pk for pk, _ in batch])
                for pk, refusal in batch:
                    order = orders.get(pk)
                    line, done = self._decide(order, pk, refusal, dry_run)
                    reprocessed += done
                    skipped += not done
                    self._say(bar, line)
                    if bar is not None:
                        bar.update(1)
        finally:
            if bar is not None:
                bar.close()

        verb = "would reprocess" if dry_run else "reprocessed"
        summary = f"{verb} {reprocessed}, skipped {skipped} of {len(selected)} selected order(s)"
        if dry_run:
            summary = f"Dry run: {summary}; nothing was changed."
        else:
            summary = f"{summary[0].upper()}{summary[1:]}."
        self.stdout.write(self.style.SUCCESS(summary) if not skipped else self.style.WARNING(summary))

    def _select(self, order_ids, instrument, since) -> list[tuple[uuid.UUID, str]]:
        """The orders to act on, oldest first, each with a reason to skip it ("" when none)."""
        filters = {}
        if instrument is not None:
            filters["instrument"] = instrument
        if since is not None:
            filters["updated_at__gte"] = since
        if not order_ids:
            pks = (
                Order.objects.filter(status=Order.Status.FAILED, **filters)
                .order_by("updated_at", "id")
                .values_list("pk", flat=True)
            )
            return [(pk, "") for pk in pks]

        requested = list(dict.fromkeys(order_ids))
        found = set(Order.objects.filter(pk__in=requested).values_list("pk", flat=True))
        unknown = [str(pk) for pk in requested if pk not in found]
        if unknown:
            raise CommandError(f"Unknown order id(s): {', '.join(unknown)}. Nothing was reprocessed.")
        in_filters = set(Order.objects.filter(pk__in=requested, **filters).values_list("pk", flat=True))
        outside = []
        if instrument is not None:
            outside.append(f"instrument {instrument}")
        if since is not None:
            outside.append(f"failed since {since.isoformat()}")
        reason = f"does not match --instrument/--since ({', '.join(outside)})"
        return [(pk, "" if pk in in_filters else reason) for pk in requested]

    def _decide(self, order: Order | None, pk, refusal: str, dry_run: bool) -> tuple[str, bool]:
        if order is None:
            return f"skipped {pk}: no longer exists", False
        if refusal:
            return f"skipped {pk}: {refusal}", False
        if dry_run:
            if order.status != Order.Status.FAILED:
                return f"skipped {pk}: is {order.status}, not FAILED", False
            return f"would reprocess {pk}: {_describe(order)}", True
        try:
            order = order_reprocess(order=order)
        except OrderError as exc:
            return f"skipped {pk}: {exc}", False
        return f"reprocessed {pk}: {_describe(order)}, now {order.status}", True

    def _progress_bar(self, total: int):
        if total <= PROGRESS_ABOVE:
            return None
        self._bar_stream = _RawStream(self.stderr)
        return tqdm(total=total, unit="order", desc="reprocess", file=self._bar_stream, dynamic_ncols=True)

    def _say(self, bar, line: str) -> None:
        if bar is None:
            self.stdout.write(line)
            return
        # Clear the bar around the line so the two never share a terminal row.
        with tqdm.external_write_mode(file=self._bar_stream):
            self.stdout.write(line)


def _describe(order: Order) -> str:
    working = order.quantity - order.matched_quantity - order.placed_quantity
    return f"{order.side} {working} of {order.quantity} {order.instrument}"


class _RawStream:
    """A management command's OutputWrapper without its line endings, for tqdm's \\r redraws."""

    def __init__(self, wrapper):
        self._wrapper = wrapper

    def write(self, text: str) -> None:
        self._wrapper.write(text, ending="")

    def flush(self) -> None:
        self._wrapper.flush()


def _parse_order_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise CommandError(f"--id {value!r} is not an order id (a UUID).") from None


def _parse_instrument(value: str) -> str:
    isin = value.strip().upper()
    if not is_valid_isin(isin):
        raise CommandError(f"--instrument {value!r} is not a valid ISIN.")
    return isin


def _parse_since(value: str) -> datetime:
    """An ISO date (midnight) or datetime; naive values are taken in the current time zone (UTC)."""
    text = value.strip()
    try:
        parsed = parse_datetime(text)
        if parsed is None:
            day = parse_date(text)
            parsed = datetime.combine(day, time.min) if day is not None else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(
            f"--since {value!r} is not an ISO date or datetime (e.g. 2026-01-31 or 2026-01-31T14:00:00Z)."
        )
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed
