"""The one retry policy of the tasks: faults that can pass are retried, bad input fails at once."""

from handgesture.errors import InputError


def retry_unless_bad_input(task, task_run, state) -> bool:
    """Retry faults that can pass (preemption, a storage outage, a crashed worker); never bad input."""
    return not isinstance(state.data, InputError)


# Declared by every task that does I/O: a preempted or crashed train task continues from its run folder's
# newest checkpoint, so a retry loses at most the work since then.
RETRY_POLICY = {"retries": 2, "retry_delay_seconds": [10, 60], "retry_condition_fn": retry_unless_bad_input}
