"""The simulated exchange's own ledger of accepted orders (SPEC §6)."""

from django.db import models
from django.utils import timezone


class ExchangeOrder(models.Model):
    """An order the exchange accepted; unique per our order id, so placing twice is a no-op."""

    order_id = models.UUIDField(unique=True)
    instrument = models.CharField(max_length=12)
    side = models.CharField(max_length=4)
    quantity = models.PositiveIntegerField()
    limit_price = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    accepted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-accepted_at"]
        verbose_name = "exchange placement"

    def __str__(self) -> str:
        return f"{self.order_id} x{self.quantity}"
