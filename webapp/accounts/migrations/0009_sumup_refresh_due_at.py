"""The refresh policy's columns: each grant's next refresh, and its token's last use.

Nullable columns with no default are catalog changes on PostgreSQL; both indexes are
partial and built CONCURRENTLY, so the migration is non-atomic. Rows already connected
have no next refresh yet: the first sweep after this migration schedules them
(accounts.sumup.refresh_policy.unscheduled_rows), as the release before would have
refreshed them, so nothing waits on a backfill. The index of 0007 stays while the
release before may still run its sweep on it.
"""

from django.db import migrations, models

from accounts.migration_operations import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0008_plain_words_for_sumup_status"),
    ]

    operations = [
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_refresh_due_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_token_used_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="artistprofile",
            index=models.Index(
                condition=models.Q(
                    ("sumup_connection_status__in", ["connected", "error"]),
                    ("sumup_refresh_due_at__isnull", False),
                    ("sumup_refresh_token__isnull", False),
                ),
                fields=["sumup_refresh_due_at"],
                name="artistprofile_sumup_next_idx",
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="artistprofile",
            index=models.Index(
                condition=models.Q(
                    ("sumup_connection_status__in", ["connected", "error"]),
                    ("sumup_refresh_due_at__isnull", True),
                    ("sumup_refresh_token__isnull", False),
                ),
                fields=["id"],
                name="artistprofile_unscheduled_idx",
            ),
        ),
    ]
