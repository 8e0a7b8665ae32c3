"""The checks of ``hvlab doctor`` (and of ``hvlab dev``/``demo`` before they start): Temporal
reachable, the namespace, workers polling both task-queue types, a real workflow round trip,
each lab host's preflight, and whether the payload codec can be set up; printed as a table
with one ``fix:`` per failed check, or as JSON.

temporalio is imported inside the functions so ``hvlab --help`` stays fast.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from rich.table import Table

from hvlab.settings import Settings, get_settings
from starter.console import UsageProblem, out

if TYPE_CHECKING:
    from temporalio.client import Client

    from hvlab.spec import LabSpec


def check_codec_settings() -> None:
    """Fail before anything starts when HVLAB_CODEC_ENABLED is set without usable keys."""
    from hvlab.codec import KeyringError
    from hvlab.temporal import data_converter

    try:
        data_converter(get_settings())
    except KeyringError as exc:
        raise UsageProblem(f"HVLAB_CODEC_ENABLED is true but the payload codec cannot be set "
                           f"up: {exc}") from None


@dataclass(frozen=True)
class CheckRow:
    """One line of the doctor's report; ``ok`` None means skipped or informational."""

    check: str
    ok: bool | None
    detail: str
    fix: str = ""
    host: str = ""


def host_checks(spec: LabSpec, sim: bool) -> list[CheckRow]:
    """The preflight of each host of ``spec`` (the simulated fleet with ``sim``), see
    :mod:`hvlab.hostcheck`: listener, credentials, Windows, Hyper-V, free space, golden
    images, host name, DNS, network profile, clock skew against the DC."""
    from hvlab.hostcheck import HostChecker
    from hvlab.powershell.errors import RemoteError

    try:
        checker = HostChecker(spec, sim=sim, home=get_settings().home_dir)
    except RemoteError as exc:
        fix = ("start the simulated fleet: `hvlab sim serve FILE --detach`" if sim
               else exc.fix or "check the lab file's connections")
        return [CheckRow(f"hosts of lab {spec.lab}", False, exc.host_message, fix)]
    try:
        return [CheckRow(f"{r.host}: {r.check}", r.ok, r.detail, r.fix, r.host)
                for r in checker.run()]
    finally:
        checker.close()


def _skipped(*names: str) -> list[CheckRow]:
    return [CheckRow(name, None, "skipped") for name in names]


LATER_CHECKS = ("namespace", "workflow pollers", "activity pollers", "round trip")


async def _reachable(settings: Settings) -> tuple[Client | None, CheckRow]:
    from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

    from hvlab.temporal import TemporalUnavailable, connect

    try:
        client = await connect(settings)
        info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    except TemporalUnavailable as exc:
        fix = "start it with `hvlab dev` (embedded) or point HVLAB_TEMPORAL_ADDRESS at a cluster"
        return None, CheckRow("Temporal reachable", False, str(exc), fix)
    version = info.server_version or "unknown version"
    return client, CheckRow("Temporal reachable", True, f"{settings.temporal_address} ({version})")


async def _namespace(client: Client, namespace: str) -> CheckRow:
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.service import RPCError

    try:
        request = DescribeNamespaceRequest(namespace=namespace)
        response = await client.workflow_service.describe_namespace(request)
    except RPCError as exc:
        fix = (
            f"create it (temporal operator namespace create -n {namespace}) or set HVLAB_NAMESPACE"
        )
        return CheckRow("namespace", False, f"{namespace!r}: {exc.message}", fix)
    retention = _duration(response.config.workflow_execution_retention_ttl.ToTimedelta())
    return CheckRow("namespace", True, f"{namespace!r} exists (retention {retention})")


def _duration(value: timedelta) -> str:
    """``3 d``, ``12 h`` or the plain timedelta."""
    seconds = int(value.total_seconds())
    if seconds and seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return str(value)


def _age(when: datetime) -> str:
    seconds = max(0.0, (datetime.now(UTC) - when).total_seconds())
    return f"{seconds:.1f} s ago"


async def _pollers(client: Client, task_queue: str, kind: str) -> CheckRow:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    queue_type = {
        "workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    }[kind]
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=queue_type,
    )
    response = await client.workflow_service.describe_task_queue(request)
    pollers = sorted(response.pollers, key=lambda p: p.last_access_time.ToDatetime(), reverse=True)
    name = f"{kind} pollers"
    if not pollers:
        fix = f"no worker polls task queue '{task_queue}': run `hvlab worker` or `hvlab dev`"
        return CheckRow(name, False, f"none on '{task_queue}'", fix)
    seen = [f"{p.identity} ({_age(p.last_access_time.ToDatetime(UTC))})" for p in pollers]
    return CheckRow(name, True, f"'{task_queue}': " + ", ".join(seen))


async def _round_trip(client: Client, task_queue: str, timeout: float) -> CheckRow:
    from temporalio.client import WorkflowFailureError

    from workflows.doctor import DoctorInput, DoctorResult, DoctorWorkflow

    nonce = uuid.uuid4().hex[:12]
    started = time.monotonic()
    try:
        result: DoctorResult = await client.execute_workflow(
            DoctorWorkflow.run,
            DoctorInput(nonce=nonce),
            id=f"hvlab-doctor-{nonce}",
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=timeout),
        )
    except WorkflowFailureError as exc:
        fix = (
            f"a worker polls '{task_queue}' but did not run DoctorWorkflow within {timeout:g} s:"
            " check the worker's log (dev stack: $HVLAB_HOME/dev/worker.log) and its hvlab version"
        )
        return CheckRow("round trip", False, f"DoctorWorkflow failed: {exc.cause or exc}", fix)
    probe = result.probe
    elapsed_ms = (time.monotonic() - started) * 1000
    detail = (
        f"DoctorWorkflow ran on {probe.worker_identity} (pid {probe.pid}, hvlab "
        f"{probe.hvlab_version}, Python {probe.python_version}) in {elapsed_ms:.0f} ms"
    )
    return CheckRow("round trip", probe.nonce == nonce, detail)


async def temporal_checks(settings: Settings, round_trip_timeout: float = 15.0) -> list[CheckRow]:
    """Reachability, namespace, pollers of both task-queue types, and a real workflow."""
    client, reach = await _reachable(settings)
    if client is None:
        return [reach, *_skipped(*LATER_CHECKS)]
    rows = [reach, await _namespace(client, settings.namespace)]
    if rows[-1].ok is False:
        return rows + _skipped(*LATER_CHECKS[1:])
    rows += [await _pollers(client, settings.task_queue, kind) for kind in ("workflow", "activity")]
    if any(row.ok is False for row in rows):
        return [*rows, *_skipped("round trip")]
    return [*rows, await _round_trip(client, settings.task_queue, round_trip_timeout)]


def _status_text(ok: bool | None, detail: str) -> str:
    if ok is None:
        return "[dim]SKIP[/]" if detail == "skipped" else "[cyan]INFO[/]"
    return "[green]OK[/]" if ok else "[red]FAIL[/]"


def print_report(rows: list[CheckRow]) -> None:
    """The checks as a table, then one ``fix:`` line per failed check."""
    table = Table("check", "status", "detail")
    for row in rows:
        table.add_row(row.check, _status_text(row.ok, row.detail), row.detail)
    out.print(table)
    for row in rows:
        if row.ok is False and row.fix:
            out.print(f"[red]fix:[/] {row.check}: {row.fix}")


def _status_word(row: CheckRow) -> str:
    if row.ok is None:
        return "skip" if row.detail == "skipped" else "info"
    return "ok" if row.ok else "fail"


def print_json(rows: list[CheckRow]) -> None:
    """The checks as one JSON document: ``ok`` overall and each check with its fix."""
    import json

    checks = [{"host": row.host or None, "check": row.check.removeprefix(f"{row.host}: "),
               "status": _status_word(row), "detail": row.detail, "fix": row.fix}
              for row in rows]
    document = {"ok": not any(row.ok is False for row in rows), "checks": checks}
    print(json.dumps(document, indent=2))
