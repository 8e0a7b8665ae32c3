"""Every activity the hvlab worker registers.

Add a domain by building its activity class here with its collaborators and extending the
list; the worker (``worker.py``) and tests call :func:`build_activities`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from activities.checkpoint import CheckpointActivities
from activities.doctor import DoctorActivities
from activities.host import HostActivities
from activities.migration import MigrationActivities
from activities.replica import ReplicaActivities
from activities.vm import VmActivities
from hvlab.powershell.endpoints import WorkerLab
from hvlab.powershell.session import SessionPool
from hvlab.settings import Settings


def build_activities(settings: Settings) -> list[Callable[..., Any]]:
    """The bound activity methods of every domain, built for ``settings``."""
    doctor = DoctorActivities(settings)
    lab = WorkerLab(settings.home_dir, os.environ, settings.secrets_file)
    sessions = SessionPool(lab)
    hosts, vms = HostActivities(sessions, lab), VmActivities(sessions, lab)
    ops = [fn for domain in (MigrationActivities, ReplicaActivities, CheckpointActivities)
           for fn in domain(sessions, lab).all()]
    return [doctor.probe, *hosts.all(), *vms.all(), *ops]
