"""The ``shared-storage`` unit kind: the SMB share for VM storage, its share ACL and NTFS rights.

SharedStorageWorkflow:
The share is granted to the Hyper-V hosts' computer accounts (``KOSA\\SVR1$``) with the same
rights on the folder, inherited (OI)(CI), as live migration and storage moves need. On failure
or cancel the share (if this run created it) and the access it granted are removed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import host, storage
    from activities.models import (
        NtfsInput,
        RemoveShareInput,
        RevokeAccessInput,
        ShareAccessInput,
        ShareInput,
    )
    from activities.storage import StorageActivities
    from hvlab.plan import PlanStep, PlanUnit
    from hvlab.spec import LabSpec
    from workflows.kind import (
        Emitted,
        Parts,
        StepName,
        Undo,
        UnitKind,
        done_steps,
        joined,
        plan_step,
        steps_of,
    )
    from workflows.options import COMPENSATION
    from workflows.progress import Progress, Tracker
    from workflows.saga import Saga
    from workflows.steps import step, tracked


class Step(StepName):
    FOLDER = "folder"
    SHARE = "share"
    SHARE_ACL = "share-acl"
    NTFS_ACL = "ntfs-acl"


def plan(spec: LabSpec, before: list[PlanUnit]) -> Iterable[PlanUnit]:
    for share in spec.shares:
        accounts = [g.account.split("\\")[-1].rstrip("$") for g in share.grants]
        h = share.host
        steps = [
            plan_step(Step.FOLDER, f"folder {share.path}", h),
            plan_step(Step.SHARE, f"SMB share {share.name}", h),
            plan_step(Step.SHARE_ACL, "share access for " + ", ".join(g.account
                                                                   for g in share.grants), h),
            plan_step(Step.NTFS_ACL, "NTFS (OI)(CI) rights for the same accounts", h),
        ]
        yield PlanUnit(id=f"shared-storage:{h}/{share.name}", kind="shared-storage",
                       target=f"{h}/{share.name}", phase=2, hosts=[h],
                       depends_on=joined(spec, accounts), steps=steps)


def step_commands(spec: LabSpec, unit: PlanUnit, step: PlanStep) -> list[Emitted]:
    host_name, share_name = unit.target.split("/", 1)
    share = next(s for s in spec.shares if s.host == host_name and s.name == share_name)
    name, _ = Step.parse(step.name)
    if name is Step.FOLDER:
        return [host.new_folders_command([share.path])]
    if name is Step.SHARE:
        return [storage.new_share_command(ShareInput.from_spec(share))]
    if name is Step.SHARE_ACL:
        grants = ShareAccessInput.from_spec(share).grants
        rights = sorted({g.access for g in grants})
        return [storage.grant_share_access_command(
            share.name, [g.account for g in grants if g.access == r], r) for r in rights]
    ntfs = NtfsInput.from_spec(share)
    return [storage.ntfs_grant_script(ntfs.path, g, ntfs.inherit) for g in ntfs.grants]


def undo(spec: LabSpec, unit: PlanUnit) -> list[Undo]:
    host_name, name = unit.target.split("/", 1)
    return [(StorageActivities.remove_share,
             RemoveShareInput(lab=spec.lab, host=host_name, name=name), ())]


def changed(spec: LabSpec, unit: PlanUnit, result: Any) -> Parts:
    """A cancelled build removes the share when this run created it; rights this run granted
    on a share that was there before stay (``hvlab down`` removes the share with them), NTFS
    rights stay."""
    done, target = done_steps(result), unit.target
    stays = [f"{target}: NTFS rights on the share's folder (`hvlab down` leaves it too)"] if (
        Step.NTFS_ACL in done) else []
    if Step.SHARE in done:
        return ["share"], stays
    if Step.SHARE_ACL in done:
        stays.append(f"{target}: share access granted on the existing share (`hvlab down FILE` "
                     "removes the share with it)")
    return None, stays


class SharedStorageInput(BaseModel):
    spec: LabSpec
    host: str
    share: str
    compensate: bool = True


@workflow.defn(name="SharedStorageWorkflow")
class SharedStorageWorkflow:
    def __init__(self) -> None:
        self._tracker = Tracker("SharedStorage")

    @workflow.query
    def progress(self) -> Progress:
        return self._tracker.progress

    @workflow.run
    async def run(self, request: SharedStorageInput) -> Progress:
        """Share, share access, NTFS rights; undo on failure."""
        share = next(s for s in request.spec.shares
                     if s.host.lower() == request.host.lower() and s.name == request.share)
        lab = request.spec.lab
        self._tracker = Tracker("SharedStorage", f"\\\\{share.host}\\{share.name}")
        self._tracker.plan(*steps_of(plan(request.spec, []),
                                    f"shared-storage:{share.host}/{share.name}"))
        saga = Saga(f"SharedStorage {share.name}", enabled=request.compensate)
        try:
            created = await tracked(self._tracker, [Step.FOLDER, Step.SHARE],
                                    f"share {share.name} on {share.path}",
                                    StorageActivities.share, ShareInput.from_spec(share).model_copy(
                                        update={"lab": lab}))
            if created.changed:
                saga.add("remove share", lambda: step(
                    StorageActivities.remove_share, RemoveShareInput(lab=lab, host=share.host,
                                                             name=share.name),
                    options=COMPENSATION))
            access = ShareAccessInput.from_spec(share).model_copy(update={"lab": lab})
            granted = await tracked(self._tracker, Step.SHARE_ACL, "share access",
                                    StorageActivities.share_access, access)
            revoke = RevokeAccessInput(lab=lab, host=share.host, name=share.name,
                                       accounts=list(granted.observed.get("granted", [])))
            if revoke.accounts and not created.changed:  # a removed share takes its ACL along
                saga.add("revoke access", lambda: step(
                    StorageActivities.revoke_access, revoke, options=COMPENSATION))
            await tracked(self._tracker, Step.NTFS_ACL, "NTFS rights (OI)(CI)",
                          StorageActivities.ntfs,
                          NtfsInput.from_spec(share).model_copy(update={"lab": lab}))
        except BaseException:
            await saga.compensate()
            raise
        self._tracker.finish()
        return self._tracker.progress


def _input(spec: LabSpec, unit: PlanUnit, compensate: bool) -> SharedStorageInput:
    host_name, share = unit.target.split("/", 1)
    return SharedStorageInput(spec=spec, host=host_name, share=share, compensate=compensate)


KIND = UnitKind(
    name="shared-storage", workflow=SharedStorageWorkflow, plan=plan, unit_input=_input,
    commands=step_commands, undo=undo, changed=changed,
    left_in_place="the share's folder, its files and NTFS rights stay", reconverge=True)
