"""Named activity option presets, defined once and spread with ``**`` at each call.

- ``PROBE``: read-only checks; quick, retried briefly.
- ``REMOTE_STEP``: one idempotent remote change; transient errors retried with backoff,
  permanent ones (non-retryable ApplicationError from the remote layer) fail at once.
- ``LONG_JOB``: host-side jobs polled with heartbeats (migrations, initial replication):
  short heartbeat timeout so a dead worker is noticed in seconds, long start-to-close.
- ``REBOOT_WAIT``: waiting for a host to come back after a reboot.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
)

PROBE = workflow.ActivityConfig(
    start_to_close_timeout=timedelta(seconds=60),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5),
)

OBSERVE = workflow.ActivityConfig(
    start_to_close_timeout=timedelta(minutes=5),
    retry_policy=_RETRY,
)
"""``lab.observe``: read-only, but a host that does not answer is retried as long as a remote
step would be (the operator sees the retries in ``--watch``), not given up on after seconds."""

REMOTE_STEP = workflow.ActivityConfig(
    start_to_close_timeout=timedelta(minutes=30),
    heartbeat_timeout=timedelta(seconds=60),
    retry_policy=_RETRY,
)

LONG_JOB = workflow.ActivityConfig(
    start_to_close_timeout=timedelta(hours=6),
    heartbeat_timeout=timedelta(seconds=20),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=0,
    ),
)

REBOOT_WAIT = workflow.ActivityConfig(
    start_to_close_timeout=timedelta(minutes=45),
    heartbeat_timeout=timedelta(seconds=60),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=2),
        maximum_interval=timedelta(seconds=15),
        maximum_attempts=0,
    ),
)

COMPENSATION = workflow.ActivityConfig(
    start_to_close_timeout=timedelta(minutes=30),
    heartbeat_timeout=timedelta(seconds=60),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5),
)
