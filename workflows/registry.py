"""Every workflow the hvlab worker registers; extend :data:`ALL_WORKFLOWS` when adding one."""

from __future__ import annotations

from workflows.doctor import DoctorWorkflow

ALL_WORKFLOWS: list[type] = [DoctorWorkflow]
