from rest_framework.routers import SimpleRouter

from orders.api.views import OrderViewSet

router = SimpleRouter()
# SPEC §3: every path works with and without the trailing slash.
router.trailing_slash = "/?"
router.register("orders", OrderViewSet, basename="order")

urlpatterns = router.urls
