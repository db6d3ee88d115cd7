"""What operations keeps that nothing else does: the count of SumUp connections by status
on each day, for the staff overview's last 30 days (operations.overview.connections).
Artists' rows say only how each connection stands now."""

from django.db import models


class ConnectionDay(models.Model):
    """How many artists' SumUp connections stood in `status` on `day`: the count last
    taken that day (beat takes one every hour)."""

    day = models.DateField(help_text="In the site's time zone.")
    # An artist's `sumup_connection_status`; no choices of its own, so a status's label
    # changing there asks for no migration here.
    status = models.CharField(max_length=20)
    count = models.IntegerField()
    recorded_at = models.DateTimeField(help_text="When the count was taken.")

    class Meta:
        ordering = ["day", "status"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "status"], name="connectionday_one_per_day_and_status"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day}: {self.count} {self.status}"
