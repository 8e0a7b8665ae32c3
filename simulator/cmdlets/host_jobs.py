"""PowerShell job cmdlets for the jobs that ``-AsJob`` Hyper-V cmdlets start on a host.

The job table is per host (not per runspace as in real PowerShell): a reconnecting client sees
jobs started by an earlier session, which real PowerShell only offers for disconnected sessions.
"""

from __future__ import annotations

from typing import Any

from simulator.cmdlets.common import as_list
from simulator.core import Call, Registry
from simulator.pstypes import _enum, member, prop, ps_object
from simulator.world import Job

JobState = _enum(
    "System.Management.Automation.JobState",
    [
        "NotStarted",
        "Running",
        "Completed",
        "Failed",
        "Stopped",
        "Blocked",
        "Suspended",
        "Disconnected",
        "Suspending",
        "Stopping",
        "AtBreakpoint",
    ],
)


def register(registry: Registry) -> None:
    registry.cmdlet("Get-Job", mutates=False)(get_job)
    registry.cmdlet("Receive-Job", mutates=False)(receive_job)
    registry.cmdlet("Wait-Job", mutates=False)(wait_job)
    registry.cmdlet("Stop-Job")(stop_job)
    registry.cmdlet("Remove-Job")(remove_job)


def ps_state(job: Job) -> str:
    if job.state in (7,):
        return "Completed"
    if job.state in (8, 9):
        return "Stopped"
    if job.state == 10:
        return "Failed"
    return "Running"


def job_object(job: Job) -> Any:
    return ps_object(
        ["System.Management.Automation.Job"],
        Id=job.number,
        Name=f"Job{job.number}",
        InstanceId=job.id,
        State=member(JobState, ps_state(job)),
        HasMoreData=bool(job.error_description),
        Location=job.host,
        Command=job.command,
        PSJobTypeName="BackgroundJob",
        StatusMessage=job.error_description,
    )


def _selected(call: Call) -> list[Job]:
    host_jobs = [j for j in call.world.jobs.values() if j.host == call.host.name]
    ids = {int(i) for i in as_list(call.get("Id"))}
    ids |= {int(prop(j, "Id")) for j in as_list(call.get("Job")) + call.input if prop(j, "Id")}
    names = {str(n).lower() for n in as_list(call.get("Name"))}
    if not ids and not names:
        return host_jobs
    return [j for j in host_jobs if j.number in ids or f"job{j.number}" in names]


def get_job(call: Call) -> None:
    for job in _selected(call):
        call.out(job_object(job))


def receive_job(call: Call) -> None:
    for job in _selected(call):
        if job.state == 10 and job.error_description:
            call.error(job.error_description, "JobFailed", "InvalidOperation", job.vm_name)


def wait_job(call: Call) -> None:
    jobs = _selected(call)
    timeout = call.get("Timeout")
    deadline = None if timeout in (None, -1) else call.sim.clock.now() + float(timeout)
    with call.unlocked():
        for job in jobs:
            while not job.done and not call.ctx.stopping():
                if deadline is not None and call.sim.clock.now() >= deadline:
                    break
                call.sim.job_done(job.id, timeout=0.05)
    for job in jobs:
        if job.done:
            call.out(job_object(job))


def stop_job(call: Call) -> None:
    for job in _selected(call):
        job.cancel_requested = True


def remove_job(call: Call) -> None:
    for job in _selected(call):
        if not job.done and not call.switch("Force"):
            call.error(
                f"The command cannot remove the job with the job ID {job.number} because "
                "the job is not finished. To remove the job, first stop the job, or use "
                "the Force parameter.",
                "JobObjectNotFinishedCannotBeRemoved",
                "InvalidOperation",
                str(job.number),
            )
            continue
        job.cancel_requested = True
        call.world.jobs.pop(job.id, None)
