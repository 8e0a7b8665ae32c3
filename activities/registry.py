"""Every activity the hvlab worker registers.

Add a domain by building its activity class here with its collaborators and extending the
list; the worker (``worker.py``) and tests call :func:`build_activities`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from activities.checkpoint import CheckpointActivities
from activities.directory import DirectoryActivities
from activities.doctor import DoctorActivities
from activities.guest import GuestActivities
from activities.host import HostActivities
from activities.migration import MigrationActivities
from activities.network import NetworkActivities
from activities.replica import ReplicaActivities
from activities.storage import StorageActivities
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
    guests, storage = GuestActivities(sessions, lab), StorageActivities(sessions, lab)
    ops = [fn for domain in (MigrationActivities, ReplicaActivities, CheckpointActivities)
           for fn in domain(sessions, lab).all()]
    directory, network = DirectoryActivities(sessions, lab), NetworkActivities(sessions, lab)
    return [doctor.probe, *hosts.all(), *vms.all(), *guests.all(), *storage.all(),
            *directory.all(), *network.all(), *ops]
