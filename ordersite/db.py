"""Database helpers shared by the services."""

import functools
import logging
import random
import time

from django.db import OperationalError, connection

logger = logging.getLogger("ordersite.db")

# MySQL/MariaDB: 1213 deadlock (the transaction was rolled back), 1205 lock wait timeout.
RETRYABLE_ERRORS = {1205, 1213}


def retry_on_deadlock(func=None, *, attempts: int = 5):
    """Run ``func`` again when MySQL picks its transaction as a deadlock victim.

    Only the outermost transaction can be retried: inside someone else's atomic
    block the error is re-raised for that caller to handle.
    """
    if func is None:
        return functools.partial(retry_on_deadlock, attempts=attempts)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        for attempt in range(1, attempts + 1):
            try:
                return func(*args, **kwargs)
            except OperationalError as exc:
                code = exc.args[0] if exc.args else None
                if code not in RETRYABLE_ERRORS or connection.in_atomic_block or attempt == attempts:
                    raise
                logger.info("%s: MySQL error %s, retry %s", func.__qualname__, code, attempt)
                time.sleep(random.uniform(0.005, 0.05) * attempt)
        raise AssertionError("unreachable")

    return wrapper
