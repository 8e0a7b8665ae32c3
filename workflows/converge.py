"""LabConvergeWorkflow: put the lab back where its lab file says, on purpose.

``up`` never moves a VM: a class's moves and failovers stay as they are. ``hvlab converge
FILE`` is the explicit way back before the next lesson: it observes the lab, moves each VM that
runs on another host than the lab file's back to it (a live migration: SMB when the lab file
keeps the VM's files on a share, else shared-nothing), fails each replication whose primary is
the lab file's replica back (a planned failover with reverse replication), then runs the build
so everything else converges too. Each move and failback is its own child workflow
(``<lab>-converge/migrate-<vm>``, ``<lab>-converge/failback-<vm>``, ``<lab>-converge/build``),
with the compensation each of them has; a failure stops the converge where it is, and running
it again goes on from the lab's state then.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from pydantic import BaseModel, Field
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from hvlab.lab_state import LabState
    from hvlab.spec import LabSpec, Vm
    from workflows.failover import PlannedFailoverInput, PlannedFailoverResult
    from workflows.lab_build import LabBuildInput, LabBuildResult
    from workflows.migration import LiveMigrationInput, LiveMigrationResult
    from workflows.observed import no_duplicates, observe
    from workflows.progress import Progress, Tracker


class LabConvergeInput(BaseModel):
    spec: LabSpec
    compensate: bool = True


class LabConvergeResult(BaseModel):
    lab: str
    moved: dict[str, str] = Field(default_factory=dict, description="VM -> 'from -> to'")
    failed_back: list[str] = Field(default_factory=list)
    units: dict[str, str] = Field(default_factory=dict, description="the build's unit states")
    progress: Progress


def converge_id(lab: str) -> str:
    return f"{lab}-converge"


def moves_back(spec: LabSpec, state: LabState) -> list[tuple[Vm, str]]:
    """(VM, the host it runs on now) for each VM that runs away from its lab-file host and is
    not a replicated VM (those go back by failback)."""
    replicated = {r.vm.lower() for r in spec.replication}
    found = []
    for vm in spec.vms:
        copy = state.working(vm.name, vm.host)
        if copy is not None and copy.host.lower() != vm.host.lower() \
                and vm.name.lower() not in replicated:
            found.append((vm, copy.host))
    return found


def failbacks(spec: LabSpec, state: LabState) -> list[str]:
    """The replicated VMs whose primary is not the lab file's primary now."""
    found = []
    for entry in spec.replication:
        primary = next((c for c in state.of(entry.vm) if c.mode == "Primary"), None)
        if primary is not None and primary.host.lower() != entry.primary.lower():
            found.append(entry.vm)
    return found


def move_mode(vm: Vm) -> str:
    """SMB live migration when the lab file keeps the VM's files on a share, else
    shared-nothing (the files move with it)."""
    return "smb" if (vm.path or "").startswith("\\\\") else "shared-nothing"


@workflow.defn(name="LabConvergeWorkflow")
class LabConvergeWorkflow:
    def __init__(self) -> None:
        self._tracker = Tracker("LabConverge")

    @workflow.query
    def progress(self) -> Progress:
        return self._tracker.progress

    @workflow.run
    async def run(self, request: LabConvergeInput) -> LabConvergeResult:
        """Observe, move back, fail back, build."""
        spec = request.spec
        state = await observe(spec)
        no_duplicates(spec.lab, state)
        moves, backs = moves_back(spec, state), failbacks(spec, state)
        self._tracker = Tracker("LabConverge", spec.lab)
        self._tracker.plan(*[(f"move:{vm.name}", f"move {vm.name} {now} -> {vm.host}")
                             for vm, now in moves],
                           *[(f"failback:{vm}", f"fail {vm} back") for vm in backs],
                           ("build", "converge the lab file"))
        result = LabConvergeResult(lab=spec.lab, progress=self._tracker.progress)
        lab = workflow.info().workflow_id
        for vm, now in moves:
            await self._tracker.run(f"move:{vm.name}", f"move {vm.name} {now} -> {vm.host}",
                                    partial(self._move, request, vm, lab))
            result.moved[vm.name] = f"{now} -> {vm.host}"
        for name in backs:
            await self._tracker.run(f"failback:{name}", f"fail {name} back",
                                    partial(self._failback, request, name, lab))
            result.failed_back.append(name)

        async def build() -> LabBuildResult:
            done = await workflow.execute_child_workflow(
                "LabBuildWorkflow", LabBuildInput(spec=spec, compensate=request.compensate),
                id=f"{lab}/build", result_type=LabBuildResult,
                static_summary=f"converge {spec.lab}", execution_timeout=timedelta(hours=12))
            assert isinstance(done, LabBuildResult)
            return done

        built = await self._tracker.run("build", "converge the lab file", build)
        self._tracker.finish()
        return result.model_copy(update={"units": built.units,
                                         "progress": self._tracker.progress})

    @staticmethod
    async def _move(request: LabConvergeInput, vm: Vm, parent: str) -> LiveMigrationResult:
        moved = await workflow.execute_child_workflow(
            "LiveMigrationWorkflow", LiveMigrationInput(
                spec=request.spec, vm=vm.name, destination=vm.host, mode=move_mode(vm),
                compensate=request.compensate),
            id=f"{parent}/migrate-{vm.name}", result_type=LiveMigrationResult,
            static_summary=f"move {vm.name} back to {vm.host}",
            execution_timeout=timedelta(hours=6))
        assert isinstance(moved, LiveMigrationResult)
        return moved

    @staticmethod
    async def _failback(request: LabConvergeInput, vm: str, parent: str
                        ) -> PlannedFailoverResult:
        entry = request.spec.replication_of(vm)
        assert entry is not None
        done = await workflow.execute_child_workflow(
            "PlannedFailoverWorkflow", PlannedFailoverInput(
                spec=request.spec, vm=vm, replica=entry.primary, compensate=request.compensate),
            id=f"{parent}/failback-{vm}", result_type=PlannedFailoverResult,
            static_summary=f"fail {vm} back to {entry.primary}",
            execution_timeout=timedelta(hours=6))
        assert isinstance(done, PlannedFailoverResult)
        return done
