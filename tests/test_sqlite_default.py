"""``make run`` without ``DATABASE_URL`` runs on an SQLite file (README): matching works there.

The suite runs on MySQL; this one test runs the matching pass in a fresh interpreter on an
SQLite database, which has no ``SELECT … FOR UPDATE`` (its transactions take the write
lock at BEGIN instead).
"""

import json
import os
import subprocess
import sys

from ordersite.settings import BASE_DIR

CROSS = """
import json
import django
django.setup()
from django.contrib.auth import get_user_model
from matching.services import instrument_match_pending
from orders.models import Order
from orders.services import order_create

owner = get_user_model().objects.create_user("sqlite-default")
order = dict(owner=owner, type="limit", instrument="US0378331005", quantity=5, limit_price=10)
buy, _ = order_create(side="buy", **order)
sell, _ = order_create(side="sell", **order)
instrument_match_pending(isin="US0378331005")
print(json.dumps({o.side: [o.status, o.matched_quantity] for o in Order.objects.all()}))
"""


def test_a_matching_pass_crosses_orders_on_sqlite(tmp_path):
    inherited = {key: value for key, value in os.environ.items() if key not in {"REDIS_URL", "DATABASE_URL"}}
    env = {
        **inherited,
        "VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "ordersite.settings",
        "LOG_LEVEL": "WARNING",
    }

    def run(*argv):
        result = subprocess.run(argv, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    run(sys.executable, "manage.py", "migrate", "--noinput", "-v0")
    statuses = json.loads(run(sys.executable, "-c", CROSS).strip().splitlines()[-1])

    assert statuses == {"buy": ["MATCHED", 5], "sell": ["MATCHED", 5]}
