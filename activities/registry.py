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
from activities.observe import ObserveActivities
from activities.replica import ReplicaActivities
from activities.storage import StorageActivities
from activities.vm import VmActivities
from hvlab.metrics import WINRM_REQUESTS, WINRM_SESSIONS_OPEN
from hvlab.powershell.endpoints import EndpointSource, WorkerLab
from hvlab.powershell.session import SessionPool
from hvlab.settings import Settings

REMOTE_DOMAINS = (HostActivities, VmActivities, GuestActivities, StorageActivities,
                  DirectoryActivities, NetworkActivities, MigrationActivities,
                  ReplicaActivities, CheckpointActivities, ObserveActivities)


def remote_activities(sessions: SessionPool, lab: EndpointSource) -> list[Callable[..., Any]]:
    """Every remote-step activity, bound to one session pool and endpoint source."""
    return [fn for domain in REMOTE_DOMAINS for fn in domain(sessions, lab).all()]


def build_activities(settings: Settings) -> list[Callable[..., Any]]:
    """The bound activity methods of every domain, built for ``settings``."""
    doctor = DoctorActivities(settings)
    lab = WorkerLab(settings.home_dir, os.environ, settings.secrets_file)
    sessions = SessionPool(lab, on_open=_sessions_open, on_request=_request_outcome,
                           connection_timeout=settings.winrm_connect_timeout)
    return [doctor.probe, *remote_activities(sessions, lab)]


def _sessions_open(host: str, delta: int) -> None:
    if host:
        WINRM_SESSIONS_OPEN.labels(host=host).inc(delta)


def _request_outcome(host: str, outcome: str) -> None:
    WINRM_REQUESTS.labels(host=host, outcome=outcome).inc()
