"""The SumUp business name, and one artist per SumUp merchant.

Non-atomic: the partial unique index is built CONCURRENTLY on PostgreSQL, so writes to
the artist table go on while it scans. The column keeps its constant default in the
database (a catalog change on PostgreSQL), so code that predates it can still insert
artists while a deploy is under way.
"""

from django.db import migrations, models

from accounts.migration_operations import AddUniqueConstraintConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        # Not after 0005: these columns must exist while a large table is still being
        # backfilled (0005 refuses until then), or the site could not read artist rows.
        ("accounts", "0004_migrate_existing_artists_to_sumup"),
    ]

    operations = [
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_business_name",
            field=models.CharField(blank=True, db_default="", default="", max_length=200),
        ),
        AddUniqueConstraintConcurrentlyOnPostgres(
            model_name="artistprofile",
            constraint=models.UniqueConstraint(
                condition=models.Q(("sumup_merchant_code__isnull", False)),
                fields=("sumup_merchant_code",),
                name="artistprofile_unique_sumup_merchant",
            ),
        ),
    ]
