"""The lab's observed state (hvlab.lab_state) and the rules built on it: where a VM runs, which
side is primary, what ``plan --live`` reports, what a reset can restore, which NAT forward a move
split. Pure functions over the seed lab; the lesson-loop test runs them against the fleet."""

from __future__ import annotations

from typing import Any

import pytest

from activities.models import ConnectivityInput, split_forward
from hvlab.lab_state import differences, lab_state, placed, summary
from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from tests.sim.conftest import SEED
from workflows.reset import restorable


@pytest.fixture(scope="module")
def seed() -> LabSpec:
    return load_lab(SEED)


def vm(name: str, state: str = "Running", mode: str = "", checkpoints: list[str] | None = None
       ) -> dict[str, Any]:
    return {"name": name, "state": state, "mode": mode, "replication_state": "Replicating",
            "health": "Normal", "checkpoints": checkpoints or []}


def after_lesson() -> dict[str, list[dict[str, Any]]]:
    """The seed after the class: win2003-1 and -3 moved to SVR2, Linux01 failed over to SVR1
    (its old primary SVR2 holds the Replica with the baseline checkpoint)."""
    return {
        "SVR1": [vm("win2003-2", checkpoints=["baseline"]),
                 vm("Linux01", mode="Primary")],
        "SVR2": [vm("win2003-1", checkpoints=["baseline"]),
                 vm("win2003-3", checkpoints=["baseline"]),
                 vm("Linux01", state="Off", mode="Replica", checkpoints=["baseline"])],
    }


def state_of(hosts: dict[str, list[dict[str, Any]]]) -> Any:
    return lab_state(list(hosts), [{"vms": vms} for vms in hosts.values()])


def test_a_vm_runs_where_its_copy_is_not_a_replica() -> None:
    state = state_of(after_lesson())
    assert state.host_of("win2003-1", "SVR1") == "SVR2"
    assert state.host_of("LINUX01", "SVR2") == "SVR1"  # names compare case-insensitively
    assert state.replica("Linux01") is not None and state.replica("Linux01").host == "SVR2"
    assert state.host_of("nowhere", "SVR1") == "SVR1"  # not built yet: the file's host
    assert state.duplicates() == {}


def test_two_running_copies_are_a_duplicate_a_replica_is_not() -> None:
    hosts = after_lesson()
    hosts["SVR1"].append(vm("win2003-1"))
    assert state_of(hosts).duplicates() == {"win2003-1": ["SVR1", "SVR2"]}
    assert state_of(after_lesson()).duplicates() == {}


def test_placed_moves_vms_and_reverses_a_failed_over_replication(seed: LabSpec) -> None:
    spec = placed(seed, state_of(after_lesson()))
    assert {v.name: v.host for v in spec.vms} == {
        "win2003-1": "SVR2", "win2003-2": "SVR1", "win2003-3": "SVR2", "Linux01": "SVR1"}
    entry = spec.replication_of("Linux01")
    assert entry is not None and (entry.primary, entry.replica) == ("SVR1", "SVR2")
    assert entry.port == seed.replication[0].port  # the rest of the entry stays
    untouched = placed(seed, state_of({"SVR1": [], "SVR2": []}))
    assert untouched == seed


def test_plan_lists_moved_reversed_created_and_unchanged(seed: LabSpec) -> None:
    hosts = after_lesson()
    hosts["SVR2"] = [c for c in hosts["SVR2"] if c["name"] != "win2003-3"]
    found = {d.what: d for d in differences(seed, state_of(hosts))}
    assert found["VM win2003-1"].action == "moved"
    assert "win2003-1 --to SVR1" in found["VM win2003-1"].detail
    assert found["VM win2003-2"].action == "unchanged"
    assert found["VM win2003-3"].action == "create"
    assert found["replication Linux01"].action == "reversed"
    assert "failback" in found["replication Linux01"].detail
    assert found["checkpoint baseline of win2003-1"].action == "unchanged"
    assert found["checkpoint baseline of Linux01"].action == "create"  # not on its primary
    line = summary(list(found.values()))
    assert found["VM Linux01"].action == "reversed"  # failed over, not migrated
    assert line == ("Plan: 3 to create, 3 moved or failed over (left as they are), "
                    "0 duplicated, 3 unchanged.")


def test_reset_keeps_a_vm_whose_checkpoint_is_on_its_replica(seed: LabSpec) -> None:
    spec, kept = restorable(seed, state_of(after_lesson()), [v.name for v in seed.vms],
                            "baseline")
    assert list(kept) == ["Linux01"]
    assert "SVR2" in kept["Linux01"] and "fail it back" in kept["Linux01"]
    assert spec.vm("win2003-1").host == "SVR2"
    hosts = after_lesson()
    hosts["SVR1"][0]["checkpoints"] = []
    with pytest.raises(Exception, match="win2003-2"):
        restorable(seed, state_of(hosts), [v.name for v in seed.vms], "baseline")


def test_a_move_that_splits_router_and_server_drops_only_that_check(seed: LabSpec) -> None:
    nat = seed.nat[0]
    assert [split_forward(seed, nat, f) for f in nat.forwards] == ["", ""]
    assert len(ConnectivityInput.from_spec(seed).checks) == 2
    moved = placed(seed, state_of(after_lesson()))  # router and win2003-3 on SVR2
    why = [split_forward(moved, nat, f) for f in nat.forwards]
    assert why[1] == "" and "win2003-2 on SVR1" in why[0]
    checks = ConnectivityInput.from_spec(moved).checks
    assert [c.port for c in checks] == [35000]
    assert checks[0].host == "SVR2"  # tried from the host the router runs on now
