"""The yardstick's table: the same row as orders.Order, with no pipeline behind it."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class BareOrder(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    client_order_id = models.CharField(max_length=64, null=True, blank=True)
    type = models.CharField(max_length=6, choices=[("market", "market"), ("limit", "limit")])
    side = models.CharField(max_length=4, choices=[("buy", "buy"), ("sell", "sell")])
    instrument = models.CharField(max_length=12)
    limit_price = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    time_in_force = models.CharField(max_length=3, default="day")
    quantity = models.PositiveIntegerField()
    matched_quantity = models.PositiveIntegerField(default=0)
    placed_quantity = models.PositiveIntegerField(default=0)
    remaining_quantity = models.PositiveIntegerField(default=0)
    # The columns orders.Order gained with the venue (SPEC §9): the same row, still.
    filled_quantity = models.PositiveIntegerField(default=0)
    filled_notional = models.DecimalField(max_digits=28, decimal_places=4, default=0)
    cancelled_quantity = models.PositiveIntegerField(default=0)
    venue_status = models.CharField(max_length=1, blank=True, default="")
    venue_cum_quantity = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, default="OPEN")
    failure_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["owner", "-created_at"], name="bare_owner_created")]
