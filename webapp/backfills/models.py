"""Run state of batched data backfills, kept in the database (the source of truth)."""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Max
from django.utils import timezone

from events.durations import roughly


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"
    SUCCEEDED = "succeeded", "Succeeded"


ACTIVE = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.CANCELLING)
# Statuses in which a worker chain should be moving the run (what recovery restarts).
MOVING = (RunStatus.RUNNING, RunStatus.CANCELLING)
# Events after which a run moves again: the time without progress counts from the latest.
RESTARTS = ("start", "resume", "retry")
RATE_WINDOW = timedelta(seconds=60)  # the rate, and so the ETA, come from these batches
# The longest pause between batches, ms. The pause is a countdown on the next slice, held
# by a worker: kept to seconds, and well under BACKFILL_STALE_SECONDS (60 s), so a run
# that pauses is never taken for a stalled one and restarted.
MAX_PAUSE_MS = 10_000


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
    pause_ms = models.IntegerField(
        default=0,
        validators=[MinValueValidator(0), MaxValueValidator(MAX_PAUSE_MS)],
        help_text=f"Wait between batches, in ms (0 to {MAX_PAUSE_MS:,}).",
    )
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
        # No status here: a page's title and breadcrumbs would show it frozen beside the
        # live status (backfills.status).
        return f"{self.backfill} #{self.pk}"

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
        """While running, the rows per second of the batches of the last RATE_WINDOW, by
        the clock (waits between slices count, so the ETA holds); once ended, the average
        from start to end. Zero when there is nothing to measure."""
        if self.status in ACTIVE:
            since = timezone.now() - RATE_WINDOW
            recent = [
                (at, batch["rows"])
                for batch in self.recent_batches
                if (at := datetime.fromisoformat(batch["at"])) >= since
            ]
            if len(recent) < 2:
                return 0.0
            # The first batch's rows were done before the span begins.
            seconds = (recent[-1][0] - recent[0][0]).total_seconds()
            return sum(rows for _, rows in recent[1:]) / seconds if seconds > 0 else 0.0
        if self.started_at is None or self.finished_at is None:
            return 0.0
        seconds = (self.finished_at - self.started_at).total_seconds()
        return self.rows_done / seconds if seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """At the observed rate, for a run that is moving; none when it is pending, paused,
        stalled or over."""
        if self.status != RunStatus.RUNNING or self.stalled_for() is not None:
            return None
        rate = self.rows_per_second
        left = max(0, self.rows_total - self.rows_done)
        return left / rate if rate > 0 else None

    def last_progress_at(self) -> datetime | None:
        """When the run last moved: its latest batch, or its latest start, resume or retry
        if later. A recovery restart is not progress, so a run that no worker takes up
        again still reads as stalled."""
        restarted = self.events.filter(action__in=RESTARTS).aggregate(at=Max("at"))["at"]
        last_batch = (
            datetime.fromisoformat(self.recent_batches[-1]["at"]) if self.recent_batches else None
        )
        moments = [at for at in (self.started_at, restarted, last_batch) if at is not None]
        return max(moments, default=None)

    def stalled_for(self, now: datetime | None = None) -> timedelta | None:
        """How long a run that should be moving has gone without progress, once that is
        longer than BACKFILL_STALE_SECONDS: the age at which the recovery task restarts it
        (recovery goes by the heartbeat, which a restart renews, so every run shown stalled
        has just been restarted or is restarted on recovery's next round). Else None."""
        if self.status not in MOVING:
            return None
        last = self.last_progress_at()
        if last is None:
            return None
        silent = (now or timezone.now()) - last
        return silent if silent > timedelta(seconds=settings.BACKFILL_STALE_SECONDS) else None

    def state(self, now: datetime | None = None) -> str:
        """The status as staff read it, e.g. "Running" or "Stalled — no progress for 4 min"."""
        stalled = self.stalled_for(now)
        if stalled is None:
            return self.get_status_display()
        return f"Stalled — no progress for {roughly(stalled.total_seconds())}"


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
