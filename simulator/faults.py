"""Fault plans for a simulated fleet, from YAML/JSON or the control API.

A plan is a list of faults::

    faults:
      - {type: drop, host: SVR1, command: Move-VM, nth: 1}          # cut the connection
      - {type: drop, host: SVR1, command: New-VM, after_processing: true}  # run it, lose the answer
      - {type: http500, host: SVR2, command: Get-VM, nth: 2, count: 1}
      - {type: delay, host: SVR1, seconds: 2.5}                     # every answer held back
      - {type: reboot, host: SVR2, after_commands: 10}              # reboot after the 10th command
      - {type: reboot, host: SVR2, at: 30}                          # 30 simulated s after start
      - {type: fail_job, host: SVR2, kind: migration, at_percent: 40}
      - {type: down, host: SVR1, kind: replication, at_percent: 50, seconds: 3}
        # SVR1 leaves the network for 3 real seconds once a replication job reaches 50 %:
        # connections are refused, a job with SVR1 at its other end fails, and neither SVR1
        # nor its VMs answer other hosts' pings and TCP connections

and ``gaps:`` (:mod:`simulator.gaps`) give hosts the state a fresh real host may be in.

``drop``/``http500``/``delay`` become the WinRM server's FaultRules; the others are applied by
the simulation (command counting, job progress).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from ruamel.yaml import YAML

from simulator.gaps import Gap
from simulator.winrm.faults import FaultEffect, FaultHooks, FaultRule
from simulator.world import Job

FaultType = Literal["drop", "http500", "delay", "reboot", "fail_job", "down"]


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: FaultType
    host: str | None = None
    command: str | None = None
    action: str | None = None
    nth: int = Field(default=1, ge=1)
    count: int = Field(default=1, ge=0)
    after_processing: bool = False
    seconds: float = 0.0
    after_commands: int | None = None
    at: float | None = None
    kind: str | None = None
    at_percent: int = Field(default=50, ge=0, le=100)
    fired: int = 0

    def for_host(self, host: str) -> bool:
        return self.host is None or self.host.lower() == host.lower()


class FaultPlan(BaseModel):
    faults: list[Fault] = Field(default_factory=list)
    gaps: list[Gap] = Field(default_factory=list)  # the hosts' state at start (simulator.gaps)

    @classmethod
    def load(cls, path: Path) -> FaultPlan:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else YAML(typ="safe").load(text)
        return cls.parse(data)

    @classmethod
    def parse(cls, data: Any) -> FaultPlan:
        if isinstance(data, list):
            data = {"faults": data}
        return cls.model_validate(data or {})


def server_rules(plan: FaultPlan, host: str) -> list[FaultRule]:
    """The WinRM-level faults of ``host`` as the server's FaultRules."""
    effects = {
        "drop": FaultEffect.DROP,
        "http500": FaultEffect.HTTP_500,
        "delay": FaultEffect.DELAY,
    }
    rules = []
    for fault in plan.faults:
        if fault.type in effects and fault.for_host(host):
            rules.append(
                FaultRule(
                    effect=effects[fault.type],
                    action=fault.action,
                    command=fault.command,
                    nth=fault.nth,
                    count=0 if fault.type == "delay" and fault.command is None else fault.count,
                    delay=fault.seconds,
                    after_processing=fault.after_processing,
                )
            )
    return rules


class SimFaults:
    """The simulation-side faults: reboots after N commands, job failures at N percent."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self.plan = plan or FaultPlan()
        self.commands: dict[str, int] = {}
        self._lock = threading.Lock()

    def replace(self, plan: FaultPlan) -> None:
        with self._lock:
            self.plan = plan
            self.commands = {}

    def reboot_due(self, host: str, command: str) -> bool:
        """Count a command; True when a reboot fault fires on it."""
        with self._lock:
            n = self.commands[host] = self.commands.get(host, 0) + 1
            for fault in self.plan.faults:
                if (
                    fault.type == "reboot"
                    and fault.for_host(host)
                    and not fault.fired
                    and fault.after_commands is not None
                    and n >= fault.after_commands
                ):
                    fault.fired += 1
                    return True
        return False

    def job_fails(self, job: Job, percent: int) -> bool:
        with self._lock:
            for fault in self.plan.faults:
                if (
                    fault.type == "fail_job"
                    and fault.for_host(job.host)
                    and not fault.fired
                    and (fault.kind is None or fault.kind == job.kind)
                    and percent >= fault.at_percent
                ):
                    fault.fired += 1
                    return True
        return False

    def downs_due(self, job: Job, percent: int) -> list[Fault]:
        """The ``down`` faults a job of this kind at this percent sets off (each fires once)."""
        with self._lock:
            due = [
                fault
                for fault in self.plan.faults
                if fault.type == "down"
                and fault.host
                and not fault.fired
                and (fault.kind is None or fault.kind == job.kind)
                and percent >= fault.at_percent
            ]
            for fault in due:
                fault.fired += 1
        return due

    def timed_reboots(self) -> list[Fault]:
        return [f for f in self.plan.faults if f.type == "reboot" and f.at is not None]


def install(hooks: FaultHooks, plan: FaultPlan, host: str) -> None:
    hooks.clear()
    for rule in server_rules(plan, host):
        hooks.add(rule)
