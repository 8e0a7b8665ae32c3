"""Observing the lab from workflow code: ``lab.observe`` on every Hyper-V host at once.

The models and rules live in :mod:`hvlab.lab_state` (pure, shared with ``hvlab plan --live``).
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.models import ObserveInput
    from activities.observe import ObserveActivities
    from hvlab.lab_state import LabState, lab_state, placed
    from hvlab.spec import LabSpec
    from workflows.options import OBSERVE
    from workflows.steps import step

__all__ = ["LabState", "no_duplicates", "observe", "placed"]


async def observe(spec: LabSpec, vms: list[str] | None = None) -> LabState:
    """Ask every Hyper-V host of the lab, at once, which of the lab's VMs it holds."""
    hosts = [h.name for h in spec.hyperv_hosts]
    names = list(vms) if vms is not None else [v.name for v in spec.vms]
    answers = await asyncio.gather(*(step(
        ObserveActivities.observe, ObserveInput(lab=spec.lab, host=host, vms=names),
        summary=f"what {host} holds now", options=OBSERVE) for host in hosts))
    return lab_state(hosts, [a.observed for a in answers])


def no_duplicates(lab: str, state: LabState) -> None:
    """Refuse to go on when a VM runs on more than one host (made by hand, never by hvlab):
    hvlab does not pick which copy is the lab's. Non-retryable Conflict naming each."""
    twice = state.duplicates()
    if twice:
        found = "; ".join(f"{vm} on {', '.join(hosts)}" for vm, hosts in twice.items())
        raise ApplicationError(
            f"lab {lab}: VMs run on more than one host ({found}); remove the extra copy "
            "(Remove-VM on the host that should not hold it) and run again",
            {"duplicates": twice}, type="Conflict", non_retryable=True)
