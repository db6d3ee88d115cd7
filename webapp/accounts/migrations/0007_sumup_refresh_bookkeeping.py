"""Refresh bookkeeping for SumUp tokens.

Columns with constant defaults are catalog changes on PostgreSQL, and the defaults stay in
the database so code that predates them can still insert artists during a deploy; the
sweep's partial index is built CONCURRENTLY, so the migration is non-atomic.
"""

from django.db import migrations, models

from accounts.migration_operations import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0006_sumup_business_name_and_unique_merchant"),
    ]

    operations = [
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_lapse_notified_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_last_error",
            field=models.CharField(blank=True, db_default="", default="", max_length=200),
        ),
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_last_refresh_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_refresh_claim",
            field=models.CharField(blank=True, db_default="", default="", max_length=36),
        ),
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_refresh_claimed_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_refresh_enqueued_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_refresh_failures",
            field=models.IntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_refresh_token_issued_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_token_version",
            field=models.IntegerField(db_default=0, default=0),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="artistprofile",
            index=models.Index(
                condition=models.Q(("sumup_connection_status__in", ["connected", "error"])),
                fields=["sumup_expires_at"],
                name="artistprofile_sumup_due_idx",
            ),
        ),
    ]
