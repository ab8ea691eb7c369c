"""The orders endpoints: thin viewset over services and selectors (SPEC §3)."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from orders.api.filters import OrderFilter
from orders.api.serializers import (
    OrderCreateInputSerializer,
    OrderDetailOutputSerializer,
    OrderOutputSerializer,
    order_representation,
)
from orders.errors import ClientOrderIdConflict, OrderNotCancellable
from orders.models import Order
from orders.selectors import order_list
from orders.services import order_cancel, order_create

UUID_PATTERN = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class OrderCursorPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    filterset_class = OrderFilter
    pagination_class = OrderCursorPagination
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self):
        # Schema generation runs as AnonymousUser; the filters need a queryset to introspect.
        if getattr(self, "swagger_fake_view", False):
            return Order.objects.none()
        return order_list(user=self.request.user)

    def get_serializer_class(self):
        if self.action == "create":
            return OrderCreateInputSerializer
        if self.action == "retrieve":
            return OrderDetailOutputSerializer
        return OrderOutputSerializer

    @extend_schema(
        request=OrderCreateInputSerializer,
        responses={201: OrderOutputSerializer, 200: OrderOutputSerializer},
    )
    def create(self, request, *args, **kwargs):
        serializer = OrderCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            order, created = order_create(owner=request.user, **serializer.validated_data)
        except ClientOrderIdConflict as exc:
            raise Conflict(str(exc)) from exc
        return Response(
            order_representation(order),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(request=None, responses={200: OrderOutputSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, *args, **kwargs):
        order = self.get_object()
        try:
            order = order_cancel(order=order)
        except OrderNotCancellable as exc:
            raise Conflict(str(exc)) from exc
        return Response(order_representation(order))
