import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("backfills", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="backfillrun",
            name="pause_ms",
            field=models.IntegerField(
                default=0,
                help_text="Wait between batches, in ms (0 to 10,000).",
                validators=[
                    django.core.validators.MinValueValidator(0),
                    django.core.validators.MaxValueValidator(10000),
                ],
            ),
        ),
    ]
