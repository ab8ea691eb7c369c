"""Internal crossing: the per-instrument lock row and the fills it produced."""

from django.db import models
from django.utils import timezone


class Instrument(models.Model):
    """One row per traded ISIN; locking it serializes that instrument's book."""

    isin = models.CharField(max_length=12, primary_key=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.isin


class OrderMatch(models.Model):
    buy_order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="buy_matches")
    sell_order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="sell_matches")
    instrument = models.CharField(max_length=12)
    quantity = models.PositiveIntegerField()
    price = models.DecimalField(max_digits=14, decimal_places=2)
    matched_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-matched_at", "-id"]
        verbose_name_plural = "order matches"
        indexes = [models.Index(fields=["instrument", "-matched_at"], name="match_instrument_time")]

    def __str__(self) -> str:
        return f"{self.quantity} {self.instrument} @ {self.price}"
