"""NatGatewayWorkflow: the lab's NAT router, then the seed's connectivity check.

- ``rras-in-guest``: RRAS NAT inside the router VM. A Windows Server 2016+ router is configured
  through PowerShell Direct (guest.rras_nat); a legacy router got the same configuration
  offline, written into its disk before its first boot (VmDeploy), so here it is only checked.
- ``host-netnat``: WinNAT on a Hyper-V host with static port mappings (undone on failure).

Then, as in the seed, the forwarded ports on the router's public address must reach the
servers on both internal subnets (and their replies route back through the router).
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.guest import GuestActivities
    from activities.models import (
        ConnectivityInput,
        GuestNatInput,
        HostNatInput,
        RemoveHostNatInput,
        split_forward,
    )
    from activities.network import NetworkActivities
    from hvlab.plan import prefixed, unit_steps
    from hvlab.spec import LabSpec, NatKind
    from workflows.options import COMPENSATION
    from workflows.progress import Progress, Tracker
    from workflows.saga import Saga
    from workflows.steps import step, tracked


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
        planned = unit_steps(spec, f"nat:{nat.name}")
        self._tracker.plan(*planned)
        configure = prefixed(planned, "nat-install", "interface", "forward")
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
            await tracked(self._tracker, "verify", "forwarded ports answer",
                          GuestActivities.check_connectivity,
                          checks.model_copy(update={"lab": lab}))
        except BaseException:
            await saga.compensate()
            raise
        self._tracker.finish()
        return self._tracker.progress
