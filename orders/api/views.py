"""The orders endpoints: thin viewset over services and selectors (SPEC §3)."""

from django_filters import MultipleChoiceFilter
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from orders.api.filters import OrderFilter
from orders.api.permissions import CanCancelOrder
from orders.api.schema import (
    BAD_REQUEST,
    COMMON_ERRORS,
    DETAIL_BODY,
    NOT_FOUND,
    TOO_LARGE,
    UNSUPPORTED,
    OrderAutoSchema,
)
from orders.api.serializers import (
    OrderCreateInputSerializer,
    OrderDetailOutputSerializer,
    OrderOutputSerializer,
    order_create_input_validate,
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
    page_size_error = "Enter a whole number of at least 1."

    def get_page_size(self, request):
        """``page_size`` as a whole number >= 1, capped at ``max_page_size``; 400 otherwise.

        DRF's own silently falls back to the default for garbage ("abc", "-1", "1.5"),
        which answers a malformed request with a 200. Empty means not given, as for
        the filters.
        """
        value = request.query_params.get(self.page_size_query_param, "")
        if value == "":
            return self.page_size
        significant = value.lstrip("0")
        if not (value.isascii() and value.isdigit() and significant):
            raise ValidationError({self.page_size_query_param: [self.page_size_error]})
        # Compare lengths first: int() refuses strings of more than 4300 digits.
        if len(significant) > len(str(self.max_page_size)):
            return self.max_page_size
        return min(int(significant), self.max_page_size)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                cap = self.max_page_size
                parameter["description"] += f" Larger than {cap} counts as {cap}."
        return parameters


@extend_schema_view(
    list=extend_schema(
        responses={
            200: OrderOutputSerializer(many=True),
            400: BAD_REQUEST,
            404: OpenApiResponse(DETAIL_BODY, description="Invalid pagination cursor."),
            **COMMON_ERRORS,
        }
    ),
    retrieve=extend_schema(responses={200: OrderDetailOutputSerializer, 404: NOT_FOUND, **COMMON_ERRORS}),
)
class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    filterset_class = OrderFilter
    pagination_class = OrderCursorPagination
    lookup_value_regex = UUID_PATTERN
    schema = OrderAutoSchema()
    # GET /orders parameters that take one value; an empty one means "not given".
    single_value_query_params = (
        *(name for name, f in OrderFilter.base_filters.items() if not isinstance(f, MultipleChoiceFilter)),
        OrderCursorPagination.cursor_query_param,
        OrderCursorPagination.page_size_query_param,
    )
    query_params_empty_means_absent = single_value_query_params

    def list(self, request, *args, **kwargs):
        # django-filter and DRF would take the last of several values and answer 200.
        query = request.query_params
        repeated = [name for name in self.single_value_query_params if len(query.getlist(name)) > 1]
        if repeated:
            raise ValidationError({name: ["Give this parameter at most once."] for name in repeated})
        return super().list(request, *args, **kwargs)

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
        responses={
            201: OrderOutputSerializer,
            200: OpenApiResponse(OrderOutputSerializer, description="Replay of a known `client_order_id`."),
            400: BAD_REQUEST,
            409: OpenApiResponse(DETAIL_BODY, description="`client_order_id` reused with another payload."),
            413: TOO_LARGE,
            415: UNSUPPORTED,
            **COMMON_ERRORS,
        },
    )
    def create(self, request, *args, **kwargs):
        try:
            order, created = order_create(owner=request.user, **order_create_input_validate(request.data))
        except ClientOrderIdConflict as exc:
            raise Conflict(str(exc)) from exc
        return Response(
            order_representation(order),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        request=None,
        responses={
            200: OpenApiResponse(
                OrderOutputSerializer, description="Cancelled in our own book: the order, `CANCELLED`."
            ),
            202: OpenApiResponse(
                OrderOutputSerializer,
                description="Working at the venue: the cancel was sent there and the order is "
                "`PENDING_CANCEL`. It ends `CANCELLED`, or goes back to working "
                "(`SUBMITTED` / `PARTIALLY_FILLED`) if the venue refuses; follow it with GET /orders/{id}.",
            ),
            403: OpenApiResponse(
                DETAIL_BODY,
                description="Another client's order (only staff see those), without the permission "
                "`orders.cancel_order`.",
            ),
            404: NOT_FOUND,
            409: OpenApiResponse(DETAIL_BODY, description="Not cancellable in its current state."),
            **COMMON_ERRORS,
        },
    )
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated, CanCancelOrder])
    def cancel(self, request, *args, **kwargs):
        order = self.get_object()  # checks CanCancelOrder: 403 before any state check
        try:
            order = order_cancel(order=order)
        except OrderNotCancellable as exc:
            raise Conflict(str(exc)) from exc
        accepted = order.status == Order.Status.PENDING_CANCEL
        return Response(
            order_representation(order),
            status=status.HTTP_202_ACCEPTED if accepted else status.HTTP_200_OK,
        )
