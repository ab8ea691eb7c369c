"""The back office (SPEC §7): Django admin for orders, matches, placements, venue fills, users and tokens.

``kit`` holds what every back-office admin shares; importing this package (Django's
admin autodiscovery does) registers the admins of each module.
"""

from orders.admin import exchange, orders, tokens, users, venue  # noqa: F401
