import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="BackfillRun",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("backfill", models.CharField(max_length=100)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("running", "Running"),
                            ("paused", "Paused"),
                            ("cancelling", "Cancelling"),
                            ("cancelled", "Cancelled"),
                            ("failed", "Failed"),
                            ("succeeded", "Succeeded"),
                        ],
                        default="pending",
                        max_length=20,
                    ),
                ),
                ("cursor", models.BigIntegerField(blank=True, null=True)),
                ("rows_done", models.BigIntegerField(default=0)),
                ("rows_total", models.BigIntegerField(default=0)),
                ("batches_done", models.IntegerField(default=0)),
                ("batch_size", models.IntegerField(default=1000)),
                ("target_batch_ms", models.IntegerField(default=100)),
                ("pause_ms", models.IntegerField(default=0)),
                ("generation", models.IntegerField(default=0)),
                ("heartbeat_at", models.DateTimeField(blank=True, null=True)),
                ("recent_batches", models.JSONField(blank=True, default=list)),
                ("last_error", models.TextField(blank=True, default="")),
                ("failed_attempts", models.IntegerField(default=0)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "started_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
                "permissions": [
                    ("start_backfillrun", "Can start, resume and retry backfill runs"),
                    ("pause_backfillrun", "Can pause backfill runs"),
                    ("cancel_backfillrun", "Can cancel backfill runs"),
                ],
            },
        ),
        migrations.CreateModel(
            name="BackfillEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("action", models.CharField(max_length=30)),
                ("detail", models.TextField(blank=True, default="")),
                ("at", models.DateTimeField(auto_now_add=True)),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="backfills.backfillrun",
                    ),
                ),
            ],
            options={
                "ordering": ["-at"],
            },
        ),
        migrations.CreateModel(
            name="BackfillBatch",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("low", models.BigIntegerField(help_text="Exclusive lower primary key.")),
                (
                    "high",
                    models.BigIntegerField(
                        help_text="Inclusive upper primary key (null: end).", null=True
                    ),
                ),
                ("rows", models.IntegerField()),
                ("ms", models.FloatField()),
                ("at", models.DateTimeField(auto_now_add=True)),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="batches",
                        to="backfills.backfillrun",
                    ),
                ),
            ],
            options={
                "ordering": ["run", "low"],
            },
        ),
        migrations.AddConstraint(
            model_name="backfillrun",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status__in", ["pending", "running", "paused", "cancelling"])),
                fields=("backfill",),
                name="backfillrun_one_active_per_backfill",
            ),
        ),
    ]
