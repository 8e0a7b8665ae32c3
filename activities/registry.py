"""Every activity the hvlab worker registers.

Add a domain by building its activity class here with its collaborators and extending the
list; the worker (``worker.py``) and tests call :func:`build_activities`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.doctor import DoctorActivities
from hvlab.settings import Settings


def build_activities(settings: Settings) -> list[Callable[..., Any]]:
    """The bound activity methods of every domain, built for ``settings``."""
    doctor = DoctorActivities(settings)
    return [doctor.probe]
