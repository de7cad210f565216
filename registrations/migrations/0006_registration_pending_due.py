"""Upkeep finds pending registrations by their payment deadline (overdue, or none yet): a partial index of the
pending ones, so that it reads those few rows and not the whole table every time it runs.

Built CONCURRENTLY on PostgreSQL, so registering goes on while it builds: a plain CREATE INDEX blocks every
write to the table until it is done. A concurrent build that was interrupted leaves an invalid index of the
same name behind, so it is dropped first.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(AddIndexConcurrently):
    """CREATE INDEX CONCURRENTLY on PostgreSQL; elsewhere (SQLite, which has no such thing) a plain index."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return migrations.AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(self.index.name)}")
        return super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return migrations.AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)
        return super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("registrations", "0005_backfill_payment_deadlines")]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="registration",
            index=models.Index(
                condition=models.Q(("status", "pending")), fields=["payment_due_at"], name="registration_pending_due"
            ),
        ),
    ]
