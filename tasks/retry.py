"""When a failed task is worth another attempt."""

from handgesture.cli import USER_ERRORS
from handgesture.storage import StorageUnreachableError


def retry_unless_bad_input(task, task_run, state) -> bool:
    """Retry faults that can pass (preemption, a storage outage); bad input fails at once."""
    error = state.data
    return isinstance(error, StorageUnreachableError) or not isinstance(error, USER_ERRORS)
