"""The ``nat`` unit kind: the lab's NAT router, then the seed's connectivity check
(NatGatewayWorkflow).

- ``rras-in-guest``: RRAS NAT inside the router VM. A Windows Server 2016+ router is configured
  through PowerShell Direct (guest.rras_nat); a legacy router got the same configuration
  offline, written into its disk before its first boot (VmDeploy), so here it is only checked.
- ``host-netnat``: WinNAT on a Hyper-V host with static port mappings (undone on failure).

Then, as in the seed, the forwarded ports on the router's public address must reach the
servers on both internal subnets (and their replies route back through the router).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import guest, network
    from activities.guest import GuestActivities
    from activities.models import (
        ConnectivityInput,
        GuestNatInput,
        HostNatInput,
        RemoveHostNatInput,
        split_forward,
    )
    from activities.network import NetworkActivities
    from hvlab.plan import PlanStep, PlanUnit
    from hvlab.spec import LabSpec, NatKind
    from workflows.kind import (
        Emitted,
        Parts,
        StepName,
        Undo,
        UnitKind,
        done_steps,
        plan_step,
        prefixed,
        steps_of,
    )
    from workflows.options import COMPENSATION
    from workflows.progress import Progress, Tracker
    from workflows.saga import Saga
    from workflows.steps import step, tracked


class Step(StepName):
    NAT_INSTALL = "nat-install"
    INTERFACE = "interface"
    FORWARD = "forward"
    VERIFY = "verify"


def plan(spec: LabSpec, before: list[PlanUnit]) -> Iterable[PlanUnit]:
    for nat in spec.nat:
        if nat.kind is NatKind.rras_in_guest and nat.vm:
            host = spec.vm(nat.vm).host
            deps = [f"vm-deploy:{nat.vm}"]
        else:
            host = nat.host or ""
            deps = [f"host-prep:{host}"]
        deps += [f"vm-deploy:{f.to_vm}" for f in nat.forwards if f.to_vm]
        steps = [plan_step(Step.NAT_INSTALL, f"{nat.kind} NAT on {nat.vm or host}", host),
                 plan_step(Step.INTERFACE.of(nat.external), f"public interface {nat.external}",
                           host)]
        steps += [plan_step(Step.INTERFACE.of(i), f"private interface {i}", host)
                  for i in nat.internal]
        steps += [plan_step(Step.FORWARD.of(f"{f.protocol}/{f.external_port}"),
                            f"{f.protocol.upper()} {f.external_port} -> {f.to_vm or f.to_ip}:"
                            f"{f.internal_port}", host) for f in nat.forwards]
        steps.append(plan_step(Step.VERIFY, "subnets reach each other; forwarded ports answer",
                               host))
        yield PlanUnit(id=f"nat:{nat.name}", kind="nat", target=nat.name, phase=4, hosts=[host],
                       depends_on=list(dict.fromkeys(deps)), steps=steps)


def step_commands(spec: LabSpec, unit: PlanUnit, step: PlanStep) -> list[Emitted]:
    nat = next(n for n in spec.nat if n.name == unit.target)
    name, arg = Step.parse(step.name)
    if name is Step.VERIFY:
        checks = ConnectivityInput.from_spec(spec.model_copy(update={"nat": [nat]})).checks
        return [guest.net_connection_command(c) for c in checks]
    if nat.kind is NatKind.host_netnat:
        request = HostNatInput.from_spec(spec, nat)
        if name is Step.NAT_INSTALL:
            return [network.new_nat_command(request)]
        if name is Step.FORWARD:
            port = int(arg.rsplit("/", 1)[1])
            return [network.add_mapping_command(request.name, f) for f in request.forwards
                    if f.external_port == port]
        return []
    router = spec.vm(nat.vm or "")
    if name is Step.NAT_INSTALL and router.guest.os.value == "windows":
        return [guest.rras_nat_script(GuestNatInput.from_spec(spec, nat))]
    return []


def undo(spec: LabSpec, unit: PlanUnit) -> list[Undo]:
    """Host NAT is removed; RRAS NAT lives in the router VM and goes with it."""
    nat = next(n for n in spec.nat if n.name == unit.target)
    if nat.kind is not NatKind.host_netnat:
        return []
    return [(NetworkActivities.remove_host_nat,
             RemoveHostNatInput(lab=spec.lab, host=nat.host or "", name=nat.name), ())]


def changed(spec: LabSpec, unit: PlanUnit, result: Any) -> Parts:
    """A cancelled build removes host NAT it configured; RRAS NAT inside a router VM goes with
    that VM, and the account says so."""
    nat = next(n for n in spec.nat if n.name == unit.target)
    configured = bool(done_steps(result) - {Step.VERIFY})
    if nat.kind is NatKind.rras_in_guest:
        return None, ([f"{unit.target}: RRAS NAT inside {nat.vm} (goes with the VM)"]
                      if configured else [])
    return (["all"] if configured else None), []


class NatWorkflowInput(BaseModel):
    spec: LabSpec
    nat: str
    compensate: bool = True


@workflow.defn(name="NatGatewayWorkflow")
class NatGatewayWorkflow:
    def __init__(self) -> None:
        self._tracker = Tracker("NatGateway")

    @workflow.query
    def progress(self) -> Progress:
        return self._tracker.progress

    @workflow.run
    async def run(self, request: NatWorkflowInput) -> Progress:
        """Configure the NAT, then verify the forwarded ports end to end."""
        spec, lab = request.spec, request.spec.lab
        nat = next(n for n in spec.nat if n.name == request.nat)
        self._tracker = Tracker("NatGateway", nat.name)
        planned = steps_of(plan(spec, []), f"nat:{nat.name}")
        self._tracker.plan(*planned)
        configure = prefixed(planned, Step.NAT_INSTALL, Step.INTERFACE, Step.FORWARD)
        saga = Saga(f"NatGateway {nat.name}", enabled=request.compensate)
        try:
            if nat.kind is NatKind.rras_in_guest:
                await tracked(self._tracker, configure, f"RRAS NAT in {nat.vm}",
                              GuestActivities.rras_nat,
                              GuestNatInput.from_spec(spec, nat).model_copy(update={"lab": lab}))
            else:
                host_nat = HostNatInput.from_spec(spec, nat).model_copy(update={"lab": lab})
                saga.add("remove host NAT", lambda: step(
                    NetworkActivities.remove_host_nat,
                    RemoveHostNatInput(lab=lab, host=host_nat.host, name=host_nat.name),
                    options=COMPENSATION))
                await tracked(self._tracker, configure, f"WinNAT on {nat.host}",
                              NetworkActivities.host_nat, host_nat)
            for forward in nat.forwards:
                why = split_forward(spec, nat, forward)
                if why:
                    workflow.logger.warning("%s: forward %s not checked: %s", nat.name,
                                            forward.external_port, why)
            checks = ConnectivityInput.from_spec(spec.model_copy(update={"nat": [nat]}))
            await tracked(self._tracker, Step.VERIFY, "forwarded ports answer",
                          GuestActivities.check_connectivity,
                          checks.model_copy(update={"lab": lab}))
        except BaseException:
            await saga.compensate()
            raise
        self._tracker.finish()
        return self._tracker.progress


KIND = UnitKind(
    name="nat", workflow=NatGatewayWorkflow, plan=plan,
    unit_input=lambda spec, unit, compensate: NatWorkflowInput(spec=spec, nat=unit.target,
                                                               compensate=compensate),
    commands=step_commands, undo=undo, changed=changed,
    left_in_place="RRAS NAT lives in the router VM and goes with it")
