"""SharedStorageWorkflow: the SMB share for VM storage, its share ACL and NTFS rights.

The share is granted to the Hyper-V hosts' computer accounts (``KOSA\\SVR1$``) with the same
rights on the folder, inherited (OI)(CI), as live migration and storage moves need. On failure
or cancel the share (if this run created it) and the access it granted are removed.
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import (
        NtfsInput,
        RemoveShareInput,
        RevokeAccessInput,
        ShareAccessInput,
        ShareInput,
    )
    from activities.storage import StorageActivities
    from hvlab.plan import unit_steps
    from hvlab.spec import LabSpec
    from workflows.options import COMPENSATION
    from workflows.progress import Progress, Tracker
    from workflows.saga import Saga
    from workflows.steps import step, tracked


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
        self._tracker.plan(*unit_steps(request.spec, f"shared-storage:{share.host}/{share.name}"))
        saga = Saga(f"SharedStorage {share.name}", enabled=request.compensate)
        try:
            created = await tracked(self._tracker, ["folder", "share"],
                                    f"share {share.name} on {share.path}",
                                    StorageActivities.share, ShareInput.from_spec(share).model_copy(
                                        update={"lab": lab}))
            if created.changed:
                saga.add("remove share", lambda: step(
                    StorageActivities.remove_share, RemoveShareInput(lab=lab, host=share.host,
                                                             name=share.name),
                    options=COMPENSATION))
            access = ShareAccessInput.from_spec(share).model_copy(update={"lab": lab})
            granted = await tracked(self._tracker, "share-acl", "share access",
                                    StorageActivities.share_access, access)
            revoke = RevokeAccessInput(lab=lab, host=share.host, name=share.name,
                                       accounts=list(granted.observed.get("granted", [])))
            if revoke.accounts and not created.changed:  # a removed share takes its ACL along
                saga.add("revoke access", lambda: step(
                    StorageActivities.revoke_access, revoke, options=COMPENSATION))
            await tracked(self._tracker, "ntfs-acl", "NTFS rights (OI)(CI)", StorageActivities.ntfs,
                          NtfsInput.from_spec(share).model_copy(update={"lab": lab}))
        except BaseException:
            await saga.compensate()
            raise
        self._tracker.finish()
        return self._tracker.progress
