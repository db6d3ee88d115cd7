"""Each recipient's batch key: the idempotency key of the provider request that carries
it with the rest of its batch.

A nullable column with no default is a catalog change on PostgreSQL; its partial index
is built CONCURRENTLY, so the migration is non-atomic. Rows claimed by the release
before have no batch key: such a row is sent again alone, under its own
`idempotency_key`, as that release sent it (campaigns.sending).
"""

from django.db import migrations, models

from accounts.migration_operations import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("campaigns", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="recipient",
            name="batch_key",
            field=models.UUIDField(blank=True, editable=False, null=True),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="recipient",
            index=models.Index(
                condition=models.Q(("batch_key__isnull", False)),
                fields=["batch_key"],
                name="recipient_batch_key_idx",
            ),
        ),
    ]
