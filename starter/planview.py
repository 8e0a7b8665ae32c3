"""The build plan as the operator reads it: ``hvlab plan`` (text or JSON) and ``hvlab demo
--plan`` print each unit, its order and its steps with the commands each step sends."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from hvlab.plan import BuildPlan
from hvlab.spec import LabSpec
from starter.console import out


def plan_json(spec: LabSpec, build: BuildPlan) -> dict[str, object]:
    from workflows.kinds import plan_commands

    commands = plan_commands(spec, build)
    data = build.model_dump(mode="json")
    for unit in data["units"]:
        for step in unit["steps"]:
            step["commands"] = [c.describe() for c in commands[(unit["id"], step["name"])]]
    return data


def print_plan(spec: LabSpec, build: BuildPlan) -> None:
    from workflows.kinds import plan_commands

    commands = plan_commands(spec, build)
    hosts = ", ".join(f"{h.name} ({h.role})" for h in spec.hosts)
    out.print(f"[bold]lab {spec.lab}[/]  domain {spec.domain.fqdn}  hosts: {hosts}")
    out.print("VMs: " + ", ".join(f"{v.name} on {v.host}" for v in spec.vms))
    for unit in build.order():
        after = ", ".join(unit.depends_on) or "-"
        out.print(f"\n[bold cyan]{unit.id}[/]  phase {unit.phase}  after: {after}")
        table = Table(show_header=False, box=None, pad_edge=False)
        for number, step in enumerate(unit.steps, 1):
            table.add_row(f"  {number:>2}.", step.host, step.title)
            for command in commands[(unit.id, step.name)]:
                table.add_row("", "", f"[dim]{escape(command.describe())}[/]")
        out.print(table)
