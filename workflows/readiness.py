"""The ``migration-readiness`` unit kind: live migration settings of one Hyper-V host
(MigrationReadinessWorkflow).

Enable-VMMigration, authentication (Kerberos), performance option, simultaneous migrations,
migration networks. On failure or cancel the previous settings are put back and only the
networks this run added are removed.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import migration
    from activities.migration import MigrationActivities
    from activities.models import (
        MigrationHostSettings,
        MigrationReadinessInput,
        MigrationRestoreInput,
    )
    from hvlab.plan import PlanStep, PlanUnit
    from hvlab.spec import LabSpec
    from workflows.kind import Emitted, StepName, Undo, UnitKind, plan_step, steps_of
    from workflows.options import COMPENSATION
    from workflows.progress import Progress, Tracker
    from workflows.saga import Saga
    from workflows.steps import step, tracked


class Step(StepName):
    ENABLE = "enable"
    SETTINGS = "settings"
    NETWORK = "network"


def plan(spec: LabSpec, before: list[PlanUnit]) -> Iterable[PlanUnit]:
    delegated = {d.host.lower() for d in spec.delegation}
    for host in spec.hyperv_hosts:
        if host.migration is None:
            continue
        m, h = host.migration, host.name
        steps = [
            plan_step(Step.ENABLE, "Enable-VMMigration" if m.enabled else "Disable-VMMigration",
                      h),
            plan_step(Step.SETTINGS, f"{m.authentication} auth, {m.performance}, "
                                     f"{m.max_concurrent} live / {m.max_storage} storage at a "
                                     "time", h),
        ]
        steps += [plan_step(Step.NETWORK.of(str(n)), f"migration network {n}", h)
                  for n in m.networks]
        deps = [f"host-prep:{h}"]
        if h.lower() in delegated:
            deps.append(f"delegation:{h}")
        yield PlanUnit(id=f"migration-readiness:{h}", kind="migration-readiness", target=h,
                       phase=3, hosts=[h], depends_on=deps, steps=steps)


def step_commands(spec: LabSpec, unit: PlanUnit, step: PlanStep) -> list[Emitted]:
    request = MigrationReadinessInput.from_spec(spec.host(unit.target))
    name, subnet = Step.parse(step.name)
    if name is Step.ENABLE:
        enabled = request.settings.enabled
        return [migration.enable_migration_command() if enabled
                else migration.disable_migration_command()]
    if name is Step.SETTINGS:
        changes = migration.setting_changes(
            request.settings, MigrationHostSettings(authentication="CredSSP",
                                                    max_vm_migrations=99,
                                                    max_storage_migrations=99,
                                                    performance="TCPIP",
                                                    use_any_network=True))
        return [migration.set_migration_host_command(changes)]
    return [migration.add_migration_network_command(n) for n in request.networks
            if n.subnet == subnet]


def undo(spec: LabSpec, unit: PlanUnit) -> list[Undo]:
    """Disable-VMMigration and remove the lab's migration networks (reference §18); the
    other settings keep the lab file's values."""
    m = spec.host(unit.target).migration
    if m is None:
        return []
    off = MigrationHostSettings(
        enabled=False, authentication=m.authentication.value, performance=m.performance.value,
        max_vm_migrations=m.max_concurrent, max_storage_migrations=m.max_storage,
        use_any_network=m.use_any_network)
    networks = [str(n) for n in m.networks]
    return [(MigrationActivities.restore_readiness, MigrationRestoreInput(
        lab=spec.lab, host=unit.target, previous=off, remove_networks=networks), (unit.target,))]


class ReadinessWorkflowInput(BaseModel):
    spec: LabSpec
    host: str
    compensate: bool = True


@workflow.defn(name="MigrationReadinessWorkflow")
class MigrationReadinessWorkflow:
    def __init__(self) -> None:
        self._tracker = Tracker("MigrationReadiness")

    @workflow.query
    def progress(self) -> Progress:
        return self._tracker.progress

    @workflow.run
    async def run(self, request: ReadinessWorkflowInput) -> Progress:
        """Apply the host's migration settings; restore the previous ones on failure."""
        host = request.spec.host(request.host)
        self._tracker = Tracker("MigrationReadiness", host.name)
        planned = steps_of(plan(request.spec, []), f"migration-readiness:{host.name}")
        self._tracker.plan(*planned)
        saga = Saga(f"MigrationReadiness {host.name}", enabled=request.compensate)
        settings = MigrationReadinessInput.from_spec(host).model_copy(
            update={"lab": request.spec.lab})
        try:
            result = await tracked(self._tracker, [n for n, _ in planned],
                                   "live migration settings", MigrationActivities.readiness,
                                   settings)
            if result.changed and "previous" in result.observed:
                undo = MigrationRestoreInput.from_readiness(settings, result)
                saga.add("restore migration settings", lambda: step(
                    MigrationActivities.restore_readiness, undo, options=COMPENSATION))
        except BaseException:
            await saga.compensate()
            raise
        self._tracker.finish()
        return self._tracker.progress


KIND = UnitKind(
    name="migration-readiness", workflow=MigrationReadinessWorkflow, plan=plan,
    unit_input=lambda spec, unit, compensate: ReadinessWorkflowInput(
        spec=spec, host=unit.target, compensate=compensate),
    commands=step_commands, undo=undo, reconverge=True)
