"""The yardstick of issue 2: a bare DRF ModelViewSet inserting the same row."""

from rest_framework import serializers, viewsets
from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import IsAuthenticated

from bench.models import BareOrder


class BareOrderSerializer(serializers.ModelSerializer):
    class Meta:
        model = BareOrder
        fields = [
            "id",
            "type",
            "side",
            "instrument",
            "limit_price",
            "time_in_force",
            "quantity",
            "status",
            "created_at",
        ]


class BareOrderViewSet(viewsets.ModelViewSet):
    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]
    serializer_class = BareOrderSerializer
    queryset = BareOrder.objects.all()

    def perform_create(self, serializer):
        serializer.save(owner=self.request.user, remaining_quantity=serializer.validated_data["quantity"])
