"""A Linux guest's address: the golden image (or DHCP) gives it, the guest's KVP daemon reports
it to Hyper-V, and guest.wait_address verifies it (fleet rules in docs/simulator-fidelity.md,
"Linux guests' addresses")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.guest import GuestActivities
from activities.models import GuestAddressInput
from activities.vm import VmActivities
from hvlab.powershell.endpoints import SimCredentials, SimEndpoints
from hvlab.powershell.session import SessionPool
from hvlab.spec import AddressSource, LabSpec, Vm
from simulator.faults import FaultPlan
from simulator.fleet import Fleet
from tests.activities.test_vm_activities import deploy
from tests.sim.conftest import hyperv_ready
from workflows.kinds import unit_steps

FIX_KVP = "hv_kvp_daemon"


@pytest.fixture
def gaps() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def spec(lab_spec: LabSpec) -> LabSpec:
    return lab_spec


@pytest.fixture
def linux_fleet(spec: LabSpec, tmp_path: Path, gaps: list[dict[str, Any]]) -> Iterator[Fleet]:
    with Fleet(spec, tmp_path, speed=0, fresh=True, port=0, control=False,
               max_receive_wait=2.0, faults=FaultPlan.parse({"gaps": gaps})) as running:
        hyperv_ready(running.sim, "SVR2")
        yield running


@pytest.fixture
def acts(linux_fleet: Fleet, spec: LabSpec) -> Iterator[tuple[VmActivities, GuestActivities]]:
    pool = SessionPool(SimCredentials(spec, linux_fleet.home))
    endpoints = SimEndpoints(spec, linux_fleet.home)
    yield VmActivities(pool, endpoints), GuestActivities(pool, endpoints)
    pool.close()


def _wait(spec: LabSpec, vm: Vm, **more: Any) -> GuestAddressInput:
    return GuestAddressInput.from_spec(spec, vm, vm.nics[0]).model_copy(
        update={"timeout_seconds": 0.0, **more})


def _reported(fleet: Fleet, vm: str) -> list[str]:
    host = fleet.sim.host("SVR2")
    guest = host.vm(vm)
    return [ip for nic in guest.nics for ip in guest.guest.ips.get(nic.mac, [])]


def test_the_golden_image_gives_linux01_its_address_and_kvp_reports_it(
    linux_fleet: Fleet, spec: LabSpec, acts: tuple[VmActivities, GuestActivities]
) -> None:
    """The seed's Linux01 (address_source golden): booted from its copy of the golden image
    it has 192.168.1.130 on eth0 and reports it through KVP; guest.wait_address sees it."""
    vms, guests = acts
    vm = spec.vm("Linux01")
    assert vm.guest.addresses_from is AddressSource.golden
    deploy(vms, spec, vm)
    result = guests.wait_address(_wait(spec, vm))
    assert result.observed["address"] == "192.168.1.130"
    assert not result.changed


@pytest.mark.parametrize("gaps", [[{"host": "SVR2", "kind": "golden_no_kvp"}]])
def test_an_image_without_the_kvp_daemon_reports_nothing(
    linux_fleet: Fleet, spec: LabSpec, acts: tuple[VmActivities, GuestActivities]
) -> None:
    """The guest has its address, but without hv_kvp_daemon Hyper-V never sees it: the wait
    fails (not retried) with the fix naming the daemon and its package."""
    vms, guests = acts
    vm = spec.vm("Linux01")
    deploy(vms, spec, vm)
    assert _reported(linux_fleet, "Linux01") == ["192.168.1.130/24"]
    with pytest.raises(ApplicationError) as caught:
        guests.wait_address(_wait(spec, vm))
    error = caught.value
    assert error.type == "VerificationFailed" and error.non_retryable
    assert "reports no address to Hyper-V" in error.message
    assert FIX_KVP in error.message and "hyperv-daemons" in error.message


@pytest.mark.parametrize("gaps", [[{"host": "SVR2", "kind": "golden_address",
                                    "address": "192.168.1.99/24"}]])
def test_an_image_with_another_address_fails_with_what_it_has(
    linux_fleet: Fleet, spec: LabSpec, acts: tuple[VmActivities, GuestActivities]
) -> None:
    """The image configures another address than the lab's: the failure says what the NIC
    reports and what to change."""
    vms, guests = acts
    vm = spec.vm("Linux01")
    deploy(vms, spec, vm)
    with pytest.raises(ApplicationError) as caught:
        guests.wait_address(_wait(spec, vm))
    message = caught.value.message
    assert "reports 192.168.1.99, not 192.168.1.130/24" in message
    assert "the golden image must configure 192.168.1.130/24" in message


def _dhcp(lab_spec: LabSpec, switch: str, ipv4: str | None) -> LabSpec:
    vm = lab_spec.vm("Linux01")
    nic = vm.nics[0].model_copy(update={"switch": switch, "ipv4": ipv4})
    guest = vm.guest.model_copy(update={"address_source": AddressSource.dhcp})
    dhcp_vm = vm.model_copy(update={"nics": [nic], "guest": guest})
    return lab_spec.model_copy(update={"vms": [v if v is not vm else dhcp_vm
                                               for v in lab_spec.vms]})


def test_dhcp_on_the_external_network_leases_the_reservation(
    lab_spec: LabSpec, tmp_path: Path
) -> None:
    """address_source dhcp: the classroom LAN's DHCP server leases the lab's ipv4 (its
    reservation) on the External switch; on an Internal switch nothing answers DHCP and the
    guest reports no address."""
    for switch, expected in (("External", "192.168.1.130"), ("Internal", None)):
        spec = _dhcp(lab_spec, switch, "192.168.1.130/24" if switch == "External" else None)
        home = tmp_path / switch
        with Fleet(spec, home, speed=0, fresh=True, port=0, control=False,
                   max_receive_wait=2.0) as fleet:
            hyperv_ready(fleet.sim, "SVR2")
            pool = SessionPool(SimCredentials(spec, fleet.home))
            try:
                endpoints = SimEndpoints(spec, fleet.home)
                vms, guests = VmActivities(pool, endpoints), GuestActivities(pool, endpoints)
                vm = spec.vm("Linux01")
                deploy(vms, spec, vm)
                request = _wait(spec, vm)
                if expected is not None:
                    assert guests.wait_address(request).observed["address"] == expected
                    continue
                assert request.subnet == "10.10.10.0/24" and request.address is None
                with pytest.raises(ApplicationError) as caught:
                    guests.wait_address(request)
                assert "an address in 10.10.10.0/24" in caught.value.message
            finally:
                pool.close()


def test_the_plan_waits_for_linux01s_address() -> None:
    """`hvlab plan` names the wait, after the start."""
    from hvlab.specfile import load_lab
    from tests.sim.conftest import SEED

    steps = [name for name, _ in unit_steps(load_lab(SEED), "vm-deploy:Linux01")]
    assert steps[-2:] == ["start", "guest-address:External"]
