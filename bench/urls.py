from django.urls import include, path
from rest_framework.routers import SimpleRouter

from bench.views import BareOrderViewSet
from ordersite.urls import urlpatterns as service_urlpatterns

router = SimpleRouter()
router.register("bench/bare-orders", BareOrderViewSet, basename="bare-order")

urlpatterns = [*service_urlpatterns, path("", include(router.urls))]
