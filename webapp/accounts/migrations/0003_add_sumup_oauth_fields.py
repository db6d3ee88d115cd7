"""Add the SumUp OAuth columns.

Every column is nullable with no database default, so on PostgreSQL each ADD COLUMN is a
catalog change: no table rewrite, and the ACCESS EXCLUSIVE lock is held for milliseconds.
Existing rows read NULL until 0004 fills the status in batches; 0005 then makes it NOT NULL.
"""

from django.db import migrations, models

import accounts.fields
from accounts.migration_operations import SetLockTimeout


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_emailverificationtoken"),
    ]

    operations = [
        # Give up rather than queue every other query behind a lock we cannot get.
        SetLockTimeout(milliseconds=5000),
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_access_token",
            field=accounts.fields.EncryptedTextField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_refresh_token",
            field=accounts.fields.EncryptedTextField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_token_type",
            field=models.CharField(blank=True, max_length=20, null=True),
        ),
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_scope",
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_merchant_code",
            field=models.CharField(blank=True, max_length=50, null=True),
        ),
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_connected_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="artistprofile",
            name="sumup_connection_status",
            field=models.CharField(
                choices=[
                    ("not_connected", "Not connected"),
                    ("connected", "Connected"),
                    ("expired", "Token expired"),
                    ("error", "Connection error"),
                ],
                max_length=20,
                null=True,
            ),
        ),
    ]
