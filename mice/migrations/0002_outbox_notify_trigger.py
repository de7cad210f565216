"""On PostgreSQL, wake the relay the moment a transaction that wrote outbox rows commits.

NOTIFY inside a transaction is delivered at commit and dropped on rollback, and one statement-level
trigger costs the writer no extra round trip. Other databases rely on the relay's polling.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION mice_outbox_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('mice_outbox', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS mice_outbox_notify ON mice_outboxmessage;
CREATE TRIGGER mice_outbox_notify AFTER INSERT ON mice_outboxmessage
    FOR EACH STATEMENT EXECUTE FUNCTION mice_outbox_notify();
"""

DROP = """
DROP TRIGGER IF EXISTS mice_outbox_notify ON mice_outboxmessage;
DROP FUNCTION IF EXISTS mice_outbox_notify();
"""


def forwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("mice", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
