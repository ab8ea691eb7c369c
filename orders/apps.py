from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_save
        from django_q.signals import pre_execute

        from orders import signals
        from orders.models import Order
        from ordersite.db import keep_recent_health_check

        post_save.connect(
            signals.order_created_queue_processing,
            sender=Order,
            dispatch_uid="orders.order_created_queue_processing",
        )
        # Our tasks are short and many: their connection is checked as our other loops' are.
        pre_execute.connect(keep_recent_health_check, dispatch_uid="orders.task_connection_check", weak=False)
