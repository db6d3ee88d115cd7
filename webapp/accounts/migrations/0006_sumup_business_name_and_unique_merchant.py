from django.db import migrations, models

from accounts.migration_operations import SetLockTimeout


class Migration(migrations.Migration):
    dependencies = [
        # Not after 0005: these columns must exist while a large table is still being
        # backfilled (0005 refuses until then), or the site could not read artist rows.
        ("accounts", "0004_migrate_existing_artists_to_sumup"),
    ]

    operations = [
        # A column with a constant default is a catalog change on PostgreSQL; the partial
        # unique index holds only linked merchants, but its build scans the table once
        # while writes wait (about 120 ms per million rows, bench/migrations_bench.py).
        SetLockTimeout(milliseconds=5000),
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_business_name",
            field=models.CharField(blank=True, default="", max_length=200),
        ),
        migrations.AddConstraint(
            model_name="artistprofile",
            constraint=models.UniqueConstraint(
                condition=models.Q(("sumup_merchant_code__isnull", False)),
                fields=("sumup_merchant_code",),
                name="artistprofile_unique_sumup_merchant",
            ),
        ),
    ]
