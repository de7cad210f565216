"""The relay claims rows by (available_at, id), so rows held back for later are never scanned early."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('mice', '0003_routes'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='outboxmessage',
            index=models.Index(condition=models.Q(('sent_at__isnull', True)), fields=['available_at', 'id'], name='mice_outbox_due'),
        ),
        migrations.RemoveIndex(
            model_name='outboxmessage',
            name='mice_outbox_pending',
        ),
    ]
