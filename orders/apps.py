from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_save

        from orders import signals
        from orders.models import Order

        post_save.connect(
            signals.order_created_queue_processing,
            sender=Order,
            dispatch_uid="orders.order_created_queue_processing",
        )
