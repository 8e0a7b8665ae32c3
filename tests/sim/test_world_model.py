"""The world model: initial state from the seed lab, JSON round trip, atomic persistence."""

from __future__ import annotations

from pathlib import Path

from hvlab.spec import LabSpec
from simulator.world import World, norm_path, parent_path
from simulator.world_build import state_json, world_from_spec
from tests.sim.conftest import GB


def test_initial_world_matches_the_lab(lab_spec: LabSpec) -> None:
    """Bare 2022 hosts in a workgroup, the DC in its domain, golden disks on Hyper-V hosts."""
    world = world_from_spec(lab_spec)
    svr1, dc = world.hosts["SVR1"], world.hosts["DC1"]
    assert svr1.domain is None and svr1.workgroup == "WORKGROUP"
    assert not svr1.has_feature("Hyper-V") and svr1.virtualization_exposed
    assert svr1.adapters["Ethernet0"].ips[0].address == "192.168.1.110/24"
    assert svr1.memory_total == 16 * GB and dc.memory_total == 4 * GB
    assert dc.domain == "kosa.vm" and dc.has_feature("AD-Domain-Services")
    assert world.ad.computer("DC1") is not None and world.ad.computer("SVR1") is None
    assert svr1.file("c:\\golden\\WIN2003-sysprep.vhdx").size == 4 * GB
    assert dc.file("C:\\Golden\\linux01.vhdx") is None


def test_state_json_shape(lab_spec: LabSpec) -> None:
    state = state_json(world_from_spec(lab_spec))
    host = state["hosts"]["SVR1"]
    for key in ("vms", "switches", "replication", "netnat", "guests", "features", "domain"):
        assert key in host
    assert state["ad"]["computers"]["DC1"]["trusted_to_auth_for_delegation"] is False
    assert "NETLOGON" in state["shares"]["DC1"] and "counters" in state


def test_round_trip_and_atomic_save(lab_spec: LabSpec, tmp_path: Path) -> None:
    world = world_from_spec(lab_spec)
    world.count("SVR1", "Get-VM")
    path = tmp_path / "sim" / "world.json"
    world.save(path)
    assert World.load(path) == world
    assert [p.name for p in path.parent.iterdir()] == ["world.json"]


def test_windows_paths_are_case_insensitive() -> None:
    assert norm_path("c:/Hyper-V//VHDs/") == "c:\\Hyper-V\\VHDs"
    assert parent_path("C:\\Hyper-V") == "C:\\"
    assert parent_path("\\\\DC1\\smb\\vm") == "\\\\DC1\\smb"
    assert parent_path("\\\\DC1\\smb") is None
