"""The options the project's tasks share, said once; each task's time limits come from
the one table of them (events.task_limits).

- `at_least_once`: for work that must not be lost with its worker. The message is
  acknowledged only once the task returned (`acks_late`), and handed back to the queue
  when the worker process dies under it (`reject_on_worker_lost`): Redis delivers it
  again after the visibility timeout. Such a task must be safe to run twice.
- `at_most_once`: acknowledged as a worker takes it. A copy lost with its worker is not
  delivered again: something else starts that work again (beat at its next interval,
  the next sweep).

Neither keeps a result: nobody waits for one.
"""

from typing import Any

from events.task_limits import TimeLimit


def limits(limit: TimeLimit) -> dict[str, Any]:
    return {"time_limit": limit.hard, "soft_time_limit": limit.soft}


def at_least_once(limit: TimeLimit) -> dict[str, Any]:
    return {**at_most_once(limit), "acks_late": True, "reject_on_worker_lost": True}


def at_most_once(limit: TimeLimit) -> dict[str, Any]:
    return {**limits(limit), "ignore_result": True}
