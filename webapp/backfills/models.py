"""Run state of batched data backfills, kept in the database (the source of truth)."""

from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"
    SUCCEEDED = "succeeded", "Succeeded"


ACTIVE = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.CANCELLING)


class BackfillRun(models.Model):
    """One run of a declared backfill. At most one active run per backfill (constraint)."""

    backfill = models.CharField(max_length=100)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.PENDING)
    # Keyset cursor: every row with a primary key <= cursor is done. Advanced in the same
    # transaction as each batch's writes, so a replayed batch finds nothing left to do.
    cursor = models.BigIntegerField(null=True, blank=True)
    rows_done = models.BigIntegerField(default=0)
    rows_total = models.BigIntegerField(default=0)
    batches_done = models.IntegerField(default=0)
    batch_size = models.IntegerField(default=1000)
    target_batch_ms = models.IntegerField(default=100)
    pause_ms = models.IntegerField(default=0)
    # Each (re)enqueue bumps the generation; a worker carrying an older one stops itself.
    generation = models.IntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    recent_batches = models.JSONField(default=list, blank=True)  # [{rows, ms, at}], newest last
    last_error = models.TextField(blank=True, default="")
    failed_attempts = models.IntegerField(default=0)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["backfill"],
                condition=models.Q(status__in=["pending", "running", "paused", "cancelling"]),
                name="backfillrun_one_active_per_backfill",
            )
        ]
        permissions = [
            ("start_backfillrun", "Can start, resume and retry backfill runs"),
            ("pause_backfillrun", "Can pause backfill runs"),
            ("cancel_backfillrun", "Can cancel backfill runs"),
        ]

    def __str__(self) -> str:
        return f"{self.backfill} #{self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def progress(self) -> float:
        """Fraction done, 0..1."""
        if self.status == RunStatus.SUCCEEDED:
            return 1.0
        return min(1.0, self.rows_done / self.rows_total) if self.rows_total else 0.0

    @property
    def rows_per_second(self) -> float:
        """Throughput over the recent batches (not the lifetime, which pauses distort)."""
        recent = self.recent_batches[-20:]
        rows = sum(batch["rows"] for batch in recent)
        seconds = sum(batch["ms"] for batch in recent) / 1000 + self.pause_ms / 1000 * len(recent)
        return rows / seconds if seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        rate = self.rows_per_second
        left = max(0, self.rows_total - self.rows_done)
        return left / rate if rate > 0 and self.is_active else None


class BackfillBatch(models.Model):
    """The ledger: one row per committed batch, written in the batch's own transaction."""

    run = models.ForeignKey(BackfillRun, on_delete=models.CASCADE, related_name="batches")
    low = models.BigIntegerField(help_text="Exclusive lower primary key.")
    high = models.BigIntegerField(null=True, help_text="Inclusive upper primary key (null: end).")
    rows = models.IntegerField()
    ms = models.FloatField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "low"]

    def __str__(self) -> str:
        return f"batch ({self.low}, {self.high}] of run {self.run_id}: {self.rows} rows"


class BackfillEvent(models.Model):
    """Who did what to a run, and when."""

    run = models.ForeignKey(BackfillRun, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=30)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    detail = models.TextField(blank=True, default="")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.action} on run {self.run_id}"
