from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    operations = [
        migrations.CreateModel(
            name="ConnectionDay",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("day", models.DateField(help_text="In the site's time zone.")),
                ("status", models.CharField(max_length=20)),
                ("count", models.IntegerField()),
                ("recorded_at", models.DateTimeField(help_text="When the count was taken.")),
            ],
            options={
                "ordering": ["day", "status"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("day", "status"), name="connectionday_one_per_day_and_status"
                    )
                ],
            },
        ),
    ]
