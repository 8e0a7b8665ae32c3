"""The build plan's shape: the lab as a DAG of units (one child workflow each) made of ordered
steps. Each kind's module in ``workflows/`` makes its units; :func:`workflows.kinds.build_plan`
puts them together. ``hvlab plan`` prints the plan and LabBuildWorkflow runs it, so both always
agree. A unit starts when every unit it depends on has finished; units on the same host also
share the host's concurrency limit.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PlanStep(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(description="stable step id within its unit, e.g. 'domain-join'")
    title: str
    host: str


class PlanUnit(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(description="kind:target, e.g. 'host-prep:SVR1'")
    kind: str
    target: str
    phase: int
    hosts: list[str]
    depends_on: list[str]
    steps: list[PlanStep]


class BuildPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    lab: str
    units: list[PlanUnit]

    def unit(self, unit_id: str) -> PlanUnit:
        for unit in self.units:
            if unit.id == unit_id:
                return unit
        raise KeyError(unit_id)

    def order(self) -> list[PlanUnit]:
        """Units in a topological order (stable: phase, then file order)."""
        done: set[str] = set()
        out: list[PlanUnit] = []
        pending = sorted(self.units, key=lambda u: u.phase)
        while pending:
            ready = [u for u in pending if set(u.depends_on) <= done]
            if not ready:
                raise ValueError(f"dependency cycle among {[u.id for u in pending]}")
            out.extend(ready)
            done.update(u.id for u in ready)
            pending = [u for u in pending if u.id not in done]
        return out


__all__ = ["BuildPlan", "PlanStep", "PlanUnit"]
