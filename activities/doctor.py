"""The doctor's probe: proves that a worker picks up and runs activity work.

It reports who ran it (worker identity, pid, hvlab and Python versions, the worker's clock)
so ``hvlab doctor`` can show which worker answered.
"""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime

from pydantic import BaseModel
from temporalio import activity

from hvlab.settings import Settings
from hvlab.telemetry import hvlab_version


class DoctorProbeInput(BaseModel):
    """What the doctor asks; ``nonce`` lets the caller match the answer to its request."""

    nonce: str = ""


class DoctorProbeResult(BaseModel):
    """Facts about the worker process that ran the probe."""

    nonce: str = ""
    worker_identity: str
    task_queue: str
    hvlab_version: str
    pid: int
    python_version: str
    worker_time: datetime


class DoctorActivities:
    """Activities of the doctor; ``settings`` is the worker's configuration."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @activity.defn(name="doctor_probe")
    async def probe(self, request: DoctorProbeInput) -> DoctorProbeResult:
        """Report this worker's identity, versions, pid and clock."""
        info = activity.info()
        activity.logger.info("doctor probe", extra={"nonce": request.nonce})
        return DoctorProbeResult(
            nonce=request.nonce,
            worker_identity=activity.client().identity,
            task_queue=info.task_queue,
            hvlab_version=hvlab_version(),
            pid=os.getpid(),
            python_version=platform.python_version(),
            worker_time=datetime.now(UTC),
        )
