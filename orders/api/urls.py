from django.urls import path
from rest_framework.routers import SimpleRouter

from orders.api.events import order_events
from orders.api.views import OrderViewSet

router = SimpleRouter()
# SPEC §3: every path works with and without the trailing slash.
router.trailing_slash = "/?"
router.register("orders", OrderViewSet, basename="order")

# Before the router: /orders/events is the event stream (SPEC §10), never an order id.
urlpatterns = [
    path("orders/events", order_events, name="order-events"),
    path("orders/events/", order_events),
    *router.urls,
]
