"""Make client_order_id an exact idempotency key, and index it for searches across owners.

MySQL/MariaDB compare strings with the table's collation (utf8mb4_general_ci, or
utf8mb4_0900_ai_ci on MySQL 8), which ignores case and accents: "order-a" replayed
"ORDER-A" and "cafe" replayed "café". utf8mb4_bin compares code points. SQLite
already compares case-sensitively, so the ALTER runs on MySQL only. utf8mb4_bin
still ignores trailing spaces, but the API trims them before they reach the database.
"""

from django.db import migrations, models

BINARY = (
    "ALTER TABLE orders_order MODIFY client_order_id "
    "VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL"
)
# Without a CHARACTER SET clause the column takes the table's default again.
TABLE_DEFAULT = "ALTER TABLE orders_order MODIFY client_order_id VARCHAR(64) NULL"


def _on_mysql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "mysql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0003_backoffice_groups"),
    ]

    operations = [
        # Before the new index, so it is built once, already binary. Not atomic: the
        # schema editor refuses DDL inside a transaction on MySQL, which cannot roll it back.
        migrations.RunPython(_on_mysql(BINARY), _on_mysql(TABLE_DEFAULT), atomic=False),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["client_order_id"], name="order_client_order_id"),
        ),
    ]
