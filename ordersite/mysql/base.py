"""Django's MySQL backend, with a transaction that costs one statement less.

Django opens a transaction by turning autocommit off (``SET autocommit=0``) and,
after the COMMIT, turns it back on (``SET autocommit=1``): four statements around
every ``atomic()`` block. Here the outermost ``atomic()`` sends ``BEGIN`` instead
and the session stays in autocommit mode throughout, so the COMMIT (or ROLLBACK)
ends the transaction and mysqlclient, which reads the session's autocommit flag
from the server's last answer, sends nothing to turn it back on: ``BEGIN`` and
``COMMIT``, two statements. Django calls this hook for ``atomic()`` only (it was
made for SQLite); ``transaction.set_autocommit(False)`` still turns autocommit
off, with the manual commits Django documents for it.
"""

from django.db.backends.mysql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def _start_transaction_under_autocommit(self):
        with self.wrap_database_errors:
            self.connection.begin()
