"""Host reboots: the host goes down (WinRM refuses connections), then pending changes apply."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from simulator.core import REBOOT_GRACE
from simulator.world import NEVER, Host, World, firmware_halts
from simulator.world_build import hyperv_rules

if TYPE_CHECKING:
    from simulator.core import SimState

AUTO_START = {"StartIfRunning", "Start"}


def restart(sim: SimState, host: Host) -> None:
    """Reboot ``host``: instantly at speed 0, else in a background thread (down, wait, up)."""
    if sim.clock.instant:
        apply_boot(sim, host)
        sim.on_host_rebooted(host.name)
        return
    host.rebooting = True
    name = host.name
    sim.booted(name).clear()
    threading.Thread(target=_cycle, args=(sim, name), name=f"reboot-{name}", daemon=True).start()


def _cycle(sim: SimState, name: str) -> None:
    threading.Event().wait(REBOOT_GRACE)
    sim.on_host_down(name)
    sim.clock.sleep(sim.clock.d.reboot)
    with sim.lock:
        host = sim.host(name)
        apply_boot(sim, host)
        host.rebooting = False
    sim.save()
    sim.on_host_up(name)
    sim.on_host_booted(name)
    sim.booted(name).set()


def apply_boot(sim: SimState, host: Host) -> None:
    """What a boot changes: pending features and domain membership take effect, VMs restart."""
    had_hyperv = host.has_feature("Hyper-V")
    _apply_features(host)
    if host.pending_domain is not None:
        host.domain = host.pending_domain or None
        host.pending_domain = None
    if host.has_feature("Hyper-V") and not had_hyperv:
        _hyperv_arrived(host)
    if not host.has_feature("Hyper-V"):
        for service in ("vmms", "vmcompute"):
            host.services.pop(service, None)
    _restart_vms(sim.world, host, sim.clock.after(sim.clock.d.guest_boot))
    host.boot_time = sim.clock.now()


def _apply_features(host: Host) -> None:
    removed = {f.lower() for f in host.pending_removal}
    kept = [f for f in host.features if f.lower() not in removed]
    for feature in host.pending_features:
        if feature.lower() not in {k.lower() for k in kept}:
            kept.append(feature)
    host.features = kept
    host.pending_features = []
    host.pending_removal = []


def _hyperv_arrived(host: Host) -> None:
    host.services["vmms"] = "Running"
    host.services["vmcompute"] = "Running"
    for rule in hyperv_rules(host.locale):
        host.firewall.setdefault(rule.name, rule)


def _restart_vms(world: World, host: Host, ready_at: float) -> None:
    for vm in host.vms.values():
        was_running = vm.state in ("Running", "Starting", "Paused")
        if was_running and vm.automatic_start_action in AUTO_START:
            vm.state = "Running"
            vm.ready_at = NEVER if firmware_halts(vm) else ready_at
        elif was_running:
            vm.state = "Saved" if vm.automatic_stop_action == "Save" else "Off"
            vm.ready_at = None
