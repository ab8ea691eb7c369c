"""OpenAPI details drf-spectacular cannot infer from the code (SPEC §3).

Error bodies, the query parameters' limits and empty values, and the rules of
POST /orders' body that its fields enforce in code. What no JSON Schema can say
stays out: the ISIN check digit, and ``limit_price`` being required for ``limit``
and prohibited for ``market``.
"""

from django import forms
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse

from orders.errors import INTERNAL_ERROR

# Django's and DRF's char fields refuse NUL characters.
NO_NUL = "^[^\\u0000]*$"

# Error bodies as the API renders them (orders/api/exceptions.py), so the schema's
# contract covers every status a client can get, not only the happy path.
DETAIL_BODY = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
_FIELD_ERRORS = {
    "type": "object",
    "description": "DRF field errors (`{field: [messages]}`, `non_field_errors` for the body as a "
    "whole), or `{detail}` when the request could not be parsed.",
    "additionalProperties": {
        "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    },
}
_INTERNAL_ERROR = {
    "type": "object",
    "properties": {"message": {"type": "string", "enum": [INTERNAL_ERROR]}},
    "required": ["message"],
}
BAD_REQUEST = OpenApiResponse(_FIELD_ERRORS, description="Bad input; nothing was stored.")
UNAUTHORIZED = OpenApiResponse(DETAIL_BODY, description="No valid credentials.")
NOT_FOUND = OpenApiResponse(DETAIL_BODY, description="No such order among the caller's.")
TOO_LARGE = OpenApiResponse(DETAIL_BODY, description="Request body over the size limit.")
UNSUPPORTED = OpenApiResponse(DETAIL_BODY, description="Request body is not `application/json`.")
SERVER_ERROR = OpenApiResponse(_INTERNAL_ERROR, description="Unexpected failure; nothing was stored.")
THROTTLED = OpenApiResponse(DETAIL_BODY, description="Rate limit reached; retry after `Retry-After` seconds.")
# What any endpoint of the orders API may answer.
COMMON_ERRORS = {401: UNAUTHORIZED, 429: THROTTLED, 500: SERVER_ERROR}


class OrderAutoSchema(AutoSchema):
    """Adds what the django-filter extension leaves out of the query parameters.

    - ``maxLength`` of the char filters, and that they refuse NUL characters;
    - ``allowEmptyValue`` on the parameters that take an empty value as "not
      given": django-filter skips an empty filter (the browsable API's filter form
      sends every field) and the list view does the same for ``cursor`` and
      ``page_size`` (``query_params_empty_means_absent`` on the view).
    """

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        empty_means_absent = set(getattr(self.view, "query_params_empty_means_absent", ()))
        filterset_class = getattr(self.view, "filterset_class", None)
        is_list = getattr(self.view, "action", None) == "list"
        filters = filterset_class.base_filters if filterset_class is not None and is_list else {}
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "query":
                continue
            name = parameter["name"]
            if name in empty_means_absent:
                parameter["allowEmptyValue"] = True
            if name not in filters or not issubclass(filters[name].field_class, forms.CharField):
                continue
            max_length = filters[name].extra.get("max_length")
            if max_length is not None:
                parameter["schema"]["maxLength"] = max_length
            parameter["schema"]["pattern"] = NO_NUL
        return operation


class OrderCreateInputExtension(OpenApiSerializerExtension):
    """POST /orders' body as ``OrderCreateInputSerializer`` checks it."""

    target_class = "orders.api.serializers.OrderCreateInputSerializer"

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        properties = schema["properties"]
        # Unknown fields are refused, not ignored.
        schema["additionalProperties"] = False
        properties["instrument"]["pattern"] = "^[A-Za-z]{2}[A-Za-z0-9]{9}[0-9]$"
        properties["instrument"]["description"] = (
            "ISIN, upper-cased on the way in; the last digit must be its check digit."
        )
        # PriceField takes a JSON number as well as a decimal string, never a negative one.
        properties["limit_price"] = {
            "oneOf": [
                {"type": "string", "pattern": "^[0-9]{1,12}(\\.[0-9]{1,2})?$"},
                {"type": "number", "minimum": 0.01, "maximum": 999999999999.99},
            ],
            "nullable": True,
            "description": "At least 0.01, at most 2 decimal places. Required for `limit`, "
            "prohibited for `market`.",
        }
        properties["client_order_id"]["minLength"] = 1
        properties["client_order_id"]["pattern"] = NO_NUL
        return schema
