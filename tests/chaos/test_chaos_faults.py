"""Faults injected while a campaign, a refresh sweep and a backfill run on the Procfile's
processes (see conftest.py for the stage). For each fault the suite prints one line of
figures and asserts them: nobody emailed twice, no recipient lost, no SumUp grant lost
outside the documented in-flight window, every job finished within two minutes of the
fault's end, and `/readyz` and `healthcheck` red during the fault and green after.

The in-flight window: SumUp has rotated the refresh token and its answer is on its way
to a worker that dies before reading it. No store can save that answer; the grant is
lost, and the site must find out on its next try and ask the artist to reconnect.
"""

from __future__ import annotations

import random
import signal
import time
from typing import TYPE_CHECKING

import pytest

from .stage import LEGACY, RECOVERY_LIMIT, Figures, Stage

if TYPE_CHECKING:
    from tests.support.chaos import JournalWatch
    from tests.support.polling import poll
else:
    from support.chaos import JournalWatch
    from support.polling import poll

pytestmark = [pytest.mark.processes, pytest.mark.chaos]

KILLS = 22  # kill -9 points across the run
HELD_KILLS = 6  # of them at a refresh SumUp answered: half before the answer is sent
OUTAGE = 30.0  # seconds Redis or PostgreSQL stays down
ANSWER_TIMEOUT = 20.0  # seconds for a refresh to reach the fake when a kill waits for one
# A grant is lost in the in-flight window when SumUp's last answer for it never reached
# the refresh journal (read exactly from Redis, `JournalWatch`) and was sent around a
# kill: up to this long before it (unread in the worker's socket, or read by a thread
# that a loaded 2-core machine had not yet run again), or after it, up to when the worker
# is back (to a dead one). A journaled answer that is lost is always counted as lost.
IN_FLIGHT_BEFORE = 0.5  # seconds
IN_FLIGHT_AFTER = 1.0  # seconds, less than a worker takes to start


def report(stage: Stage, figures: Figures) -> None:
    """Print the fault's line, then assert every figure on it."""
    print(figures.line())
    assert figures.duplicates == 0, figures.line()
    assert figures.lost == 0, figures.line()
    assert figures.grants_lost == 0, figures.line()
    assert figures.in_flight_told == figures.in_flight_lost, figures.line()
    assert figures.recovered_in is not None, f"{figures.line()}\n{stage.log_tails()}"
    assert figures.recovered_in <= RECOVERY_LIMIT, figures.line()
    assert figures.readyz[0] != 200 and not figures.healthcheck[0], figures.line()
    assert figures.readyz[1] == 200 and figures.healthcheck[1], figures.line()


def wait_for_work_under_way(stage: Stage) -> None:
    """Every job has started and none is near its end: the fault lands mid-job."""

    def under_way() -> bool:
        _, rows = stage.backfill_progress()
        sent = len(stage.esp.state.accepted)
        return rows >= LEGACY // 10 and sent >= 100 and stage.refreshed() >= 100

    started, waited = poll(under_way, 90, 0.5)
    assert started, f"the jobs did not get going in {waited:.0f} s\n{stage.log_tails()}"


def in_flight_grants(stage: Stage, journal: JournalWatch, kills: list[float]) -> set[str]:
    """Grants whose last answer from SumUp went out around a kill and never reached the
    refresh journal: the documented window."""
    profiles = stage.due_profiles()
    return {
        grant
        for grant, at in stage.holder.last_answers().items()
        if any(kill - IN_FLIGHT_BEFORE <= at <= kill + IN_FLIGHT_AFTER for kill in kills)
        and not journal.journaled_since(profiles[grant], at)
    }


def restart_worker(stage: Stage) -> None:
    assert stage.processes is not None
    stage.processes.start("worker")  # at once, as the process manager would


def test_kill_9_of_the_worker_at_22_points_loses_and_repeats_nothing(stage: Stage) -> None:
    assert stage.processes is not None
    figures = Figures("kill-9x22")
    journal = JournalWatch(stage.redis.port).start()
    stage.start_jobs()
    wait_for_work_under_way(stage)
    kills: list[float] = []
    landed = {"in_flight": 0, "after_answer": 0, "random": 0}
    points = ["in_flight", "after_answer"] * (HELD_KILLS // 2)
    points += ["random"] * (KILLS - len(points))
    random.shuffle(points)
    for n, point in enumerate(points):
        if point != "random":
            held = stage.holder.hold_next_refresh()
            if not held.answered.wait(ANSWER_TIMEOUT):
                stage.holder.cancel()
                point = "random"
        if point == "random":
            time.sleep(random.uniform(0.0, 2.0))
            stage.processes.kill("worker")
        elif point == "in_flight":
            stage.processes.kill("worker")
            held.release.set()  # to a dead socket
        else:
            held.release.set()
            held.sent.wait(5)
            # Most often past the in-flight window: the worker has read the answer, and
            # is storing it or has stored it.
            time.sleep(random.uniform(0.02, 0.05))
            stage.processes.kill("worker")
        kills.append(time.monotonic())
        landed[point] += 1
        if n == 0:
            stage.health_during(figures)
        restart_worker(stage)
        time.sleep(random.uniform(1.5, 4.0))
    fault_ended = time.time()

    figures.recovered_in, figures.unfinished = stage.wait_finished(fault_ended)
    stage.health_after(figures)
    journal.stop()
    stage.count(figures, in_flight_grants(stage, journal, kills))
    figures.notes = " ".join(f"{name}={n}" for name, n in landed.items())
    report(stage, figures)


def test_redis_stopped_for_30_s_and_started_again_loses_and_repeats_nothing(
    stage: Stage,
) -> None:
    figures = Figures("redis-restart")
    stage.start_jobs()
    wait_for_work_under_way(stage)
    stage.redis.stop()
    down_at = time.monotonic()
    stage.health_during(figures)
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))
    stage.redis.start()
    fault_ended = time.time()

    figures.recovered_in, figures.unfinished = stage.wait_finished(fault_ended)
    stage.health_after(figures)
    stage.count(figures, set())
    figures.notes = f"restarted={','.join(stage.restarts) or 'none'}"
    report(stage, figures)


def test_postgresql_stopped_for_30_s_loses_and_repeats_nothing(stage: Stage) -> None:
    figures = Figures("postgres-outage")
    stage.start_jobs()
    wait_for_work_under_way(stage)
    stage.postgres.stop_immediately()
    down_at = time.monotonic()
    stage.health_during(figures)
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))
    stage.postgres.start()
    fault_ended = time.time()

    figures.recovered_in, figures.unfinished = stage.wait_finished(fault_ended)
    stage.health_after(figures)
    stage.count(figures, set())
    figures.notes = f"restarted={','.join(stage.restarts) or 'none'}"
    report(stage, figures)


def test_sigterm_to_the_worker_during_a_backfill_batch_loses_and_repeats_nothing(
    stage: Stage,
) -> None:
    assert stage.processes is not None
    figures = Figures("sigterm")
    stage.start_jobs()
    wait_for_work_under_way(stage)
    worker = stage.processes.running["worker"]
    status, rows = stage.backfill_progress()
    assert status == "running" and rows < LEGACY, (status, rows)
    worker.process.send_signal(signal.SIGTERM)  # the leader only, as a process manager does
    exited, waited = poll(lambda: not worker.is_alive(), 60, 0.2)
    stage.health_during(figures)
    restart_worker(stage)
    fault_ended = time.time()

    figures.recovered_in, figures.unfinished = stage.wait_finished(fault_ended)
    stage.health_after(figures)
    stage.count(figures, set())
    figures.notes = f"warm_shutdown={waited:.0f}s" if exited else "warm shutdown never ended"
    report(stage, figures)
