"""migration.watch_downtime: pings during a move, measured or honestly not measured."""

from __future__ import annotations

import pytest

from activities.migration import MigrationActivities
from activities.models import DowntimeInput
from hvlab.metrics import REGISTRY
from hvlab.powershell.endpoints import SimEndpoints
from hvlab.powershell.session import SessionPool
from hvlab.spec import LabSpec
from simulator.fleet import Fleet
from tests.sim.conftest import hyperv_ready


@pytest.fixture
def acts(sessions: SessionPool, fleet: Fleet, lab_spec: LabSpec) -> MigrationActivities:
    return MigrationActivities(sessions, SimEndpoints(lab_spec, fleet.home))


def probe(address: str, source: str = "DC1") -> DowntimeInput:
    return DowntimeInput(host=source, address=address, vm="vm", job_host="SVR1",
                         job_id="NO-SUCH-JOB", mode="shared-nothing", interval_seconds=0.01)


def test_unreachable_vm_is_not_measured(acts: MigrationActivities) -> None:
    """An address that does not answer before the move is not counted as downtime."""
    result = acts.watch_downtime(probe("10.99.99.99"))
    assert result.observed["measured"] is False
    assert "does not answer pings from DC1" in result.observed["reason"]


def test_answering_address_is_measured_until_the_job_ends(
    acts: MigrationActivities, fleet: Fleet
) -> None:
    """Pings that all answer give 0 s downtime; the metric records one observation. (SVR1
    answers pings once its 'Echo Request - ICMPv4-In' rule is on, as on Windows.)"""
    hyperv_ready(fleet.sim, "SVR1")  # the job is looked up in root/virtualization/v2
    rule = fleet.world.firewall_rule(fleet.world.host("SVR1"), "FPS-ICMP4-ERQ-In")  # type: ignore[arg-type]
    assert rule is not None
    rule.enabled = True
    labels = {"mode": "shared-nothing"}
    before = REGISTRY.get_sample_value("hvlab_migration_downtime_seconds_count", labels) or 0
    result = acts.watch_downtime(probe("192.168.1.110"))
    assert result.observed["measured"] is True
    assert result.observed["downtime_seconds"] == 0 and result.observed["lost"] == 0
    assert result.observed["probes"] >= 2
    after = REGISTRY.get_sample_value("hvlab_migration_downtime_seconds_count", labels)
    assert after == before + 1


def test_ping_command_binds() -> None:
    """The probe's Test-Connection fits a real parameter set."""
    from activities.migration import ping_command
    from hvlab.powershell.catalog import Catalog

    command = ping_command("192.168.1.111")
    params = {k: (None if v.__class__.__name__ == "Switch" else v)
              for k, v in command.parameters.items()}
    assert Catalog.load().bind(command.cmdlet, params).params["Quiet"] is True
