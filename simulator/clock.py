"""Simulated time: how long operations take, scaled by a speed factor.

``speed`` is simulated seconds per real second: 60 makes a 60 s reboot take one real second;
0 or infinity makes every operation instant (tests). Timestamps are real wall-clock times;
only durations are scaled.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

MB = 1024**2


@dataclass(frozen=True)
class Durations:
    """Simulated durations and rates of the slow operations (seconds, bytes per second)."""

    reboot: float = 90.0
    feature_install: float = 40.0
    vm_start: float = 3.0
    vm_stop: float = 5.0
    guest_boot: float = 30.0
    # a sysprepped image's first boot: specialize pass, restart, mini-setup (OOBE), first-boot
    # commands (SetupComplete / the offline configuration), restart
    first_boot: float = 300.0
    # after a host reboot its WinRM listener is up before logons work (401 until then)
    logon_settle: float = 30.0
    copy_rate: float = 250 * MB
    lm_memory_rate: float = 1000 * MB
    lm_disk_rate: float = 250 * MB
    replication_rate: float = 100 * MB
    blackout: float = 1.0
    job_steps: int = 20


class Clock:
    """Converts simulated durations to real waits."""

    def __init__(self, speed: float = 0.0, durations: Durations | None = None) -> None:
        self.speed = speed
        self.d = durations or Durations()
        self._wake = threading.Event()

    @property
    def instant(self) -> bool:
        return self.speed <= 0 or math.isinf(self.speed)

    def now(self) -> float:
        return time.time()

    def real(self, sim_seconds: float) -> float:
        """Real seconds that ``sim_seconds`` of simulated time take."""
        return 0.0 if self.instant else max(0.0, sim_seconds) / self.speed

    def after(self, sim_seconds: float) -> float:
        """The real timestamp at which ``sim_seconds`` from now have elapsed."""
        return self.now() + self.real(sim_seconds)

    def sleep(self, sim_seconds: float) -> None:
        """Wait the real equivalent of ``sim_seconds`` (no wait when instant)."""
        real = self.real(sim_seconds)
        if real > 0:
            self._wake.wait(real)

    def copy_seconds(self, size: int) -> float:
        return size / self.d.copy_rate
