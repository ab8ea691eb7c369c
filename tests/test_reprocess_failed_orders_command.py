"""`manage.py reprocess_failed_orders` (SPEC §7): choose FAILED orders, print every decision, delegate."""

import threading
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from orders.models import Order
from tests.factories import VALID_ISINS, FailedOrderFactory, OrderFactory

pytestmark = pytest.mark.django_db

APPLE, MSFT = VALID_ISINS[0], VALID_ISINS[1]


def reprocess(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("reprocess_failed_orders", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def statuses(*orders) -> list[str]:
    return [Order.objects.get(pk=order.pk).status for order in orders]


def test_dry_run_prints_what_it_would_do_and_changes_nothing():
    failed = FailedOrderFactory(quantity=100, matched_quantity=30)
    OrderFactory()  # working: not selected

    out, _ = reprocess("--dry-run")

    assert f"would reprocess {failed.pk}: buy 70 of 100 {APPLE}" in out
    assert out.strip().splitlines()[-1] == (
        "Dry run: would reprocess 1, skipped 0 of 1 selected order(s); nothing was changed."
    )
    failed.refresh_from_db()
    assert (failed.status, failed.remaining_quantity) == (Order.Status.FAILED, 0)


def test_reprocesses_every_failed_order_through_the_service():
    first = FailedOrderFactory(quantity=100)
    second = FailedOrderFactory(quantity=50, matched_quantity=20, side=Order.Side.SELL)
    working = OrderFactory()

    out, _ = reprocess()

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.remaining_quantity, first.needs_match) == (Order.Status.OPEN, 100, True)
    assert (second.status, second.remaining_quantity) == (Order.Status.PARTIAL, 30)
    assert first.failure_reason == ""
    assert f"reprocessed {first.pk}: buy 100 of 100 {APPLE}, now OPEN" in out
    assert f"reprocessed {second.pk}: sell 30 of 50 {APPLE}, now PARTIAL" in out
    assert str(working.pk) not in out
    assert out.strip().splitlines()[-1] == "Reprocessed 2, skipped 0 of 2 selected order(s)."


def test_running_twice_reprocesses_nothing_the_second_time():
    failed = FailedOrderFactory()
    reprocess()

    out, _ = reprocess()
    assert out.strip().splitlines()[-1] == "Reprocessed 0, skipped 0 of 0 selected order(s)."

    out, _ = reprocess("--id", str(failed.pk))
    assert f"skipped {failed.pk}: Order {failed.pk} is OPEN, not FAILED: nothing to reprocess" in out
    assert out.strip().splitlines()[-1] == "Reprocessed 0, skipped 1 of 1 selected order(s)."


def test_id_takes_only_the_named_orders_and_explains_the_others():
    chosen, also_chosen, untouched = FailedOrderFactory(), FailedOrderFactory(), FailedOrderFactory()
    cancelled = OrderFactory(status=Order.Status.CANCELLED, remaining_quantity=0)

    out, _ = reprocess("--id", str(chosen.pk), "--id", str(also_chosen.pk), "--id", str(cancelled.pk))

    assert statuses(chosen, also_chosen, untouched, cancelled) == ["OPEN", "OPEN", "FAILED", "CANCELLED"]
    assert f"skipped {cancelled.pk}: Order {cancelled.pk} is CANCELLED, not FAILED" in out
    assert out.strip().splitlines()[-1] == "Reprocessed 2, skipped 1 of 3 selected order(s)."


def test_instrument_takes_only_that_instruments_failed_orders():
    apple, msft = FailedOrderFactory(instrument=APPLE), FailedOrderFactory(instrument=MSFT)

    out, _ = reprocess("--instrument", MSFT.lower())

    assert statuses(apple, msft) == ["FAILED", "OPEN"]
    assert str(apple.pk) not in out


def test_since_takes_orders_that_failed_at_or_after_it():
    recent, old = FailedOrderFactory(), FailedOrderFactory()
    Order.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=3))
    yesterday = (timezone.now() - timedelta(days=1)).date().isoformat()

    out, _ = reprocess("--since", yesterday)

    assert statuses(recent, old) == ["OPEN", "FAILED"]
    assert str(old.pk) not in out
    reprocess("--since", (timezone.now() - timedelta(days=4)).isoformat())
    assert statuses(old) == ["OPEN"]


def test_id_outside_the_other_filters_is_skipped_with_the_reason():
    failed = FailedOrderFactory(instrument=APPLE)

    out, _ = reprocess("--id", str(failed.pk), "--instrument", MSFT)

    assert statuses(failed) == ["FAILED"]
    assert f"skipped {failed.pk}: does not match --instrument/--since (instrument {MSFT})" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--id", "not-a-uuid"], "--id 'not-a-uuid' is not an order id (a UUID)."),
        (["--since", "yesterday"], "--since 'yesterday' is not an ISO date or datetime"),
        (["--since", "2026-02-30"], "--since '2026-02-30' is not an ISO date or datetime"),
        (["--instrument", "US0378331006"], "--instrument 'US0378331006' is not a valid ISIN."),
    ],
)
def test_bad_arguments_are_refused_before_anything_changes(args, message):
    failed = FailedOrderFactory()

    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        reprocess(*args)

    assert statuses(failed) == ["FAILED"]


def test_unknown_id_is_refused_and_nothing_is_reprocessed():
    failed = FailedOrderFactory()
    unknown = uuid.uuid4()

    with pytest.raises(CommandError, match=f"Unknown order id\\(s\\): {unknown}. Nothing was reprocessed."):
        reprocess("--id", str(failed.pk), "--id", str(unknown))

    assert statuses(failed) == ["FAILED"]


def test_large_sets_show_a_progress_bar():
    FailedOrderFactory.create_batch(51)

    out, err = reprocess()

    assert "51/51" in err and "reprocess" in err
    assert out.count("reprocessed ") == 51
    assert out.strip().splitlines()[-1] == "Reprocessed 51, skipped 0 of 51 selected order(s)."


def test_small_sets_show_no_progress_bar():
    FailedOrderFactory.create_batch(3)

    _, err = reprocess()

    assert err == ""


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_reprocess_each_order_exactly_once():
    orders = FailedOrderFactory.create_batch(20)
    outputs, errors = [], []
    start = threading.Barrier(2)

    def run():
        try:
            start.wait()
            outputs.append(reprocess()[0])
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    reprocessed = sum(out.count("\nreprocessed ") + out.startswith("reprocessed ") for out in outputs)
    assert reprocessed == 20
    assert set(statuses(*orders)) == {Order.Status.OPEN}
