"""Every packaged .ps1: contract (header, param block), commands known to the catalogue,
parameters as documented, and a simulator implementation for each."""

from __future__ import annotations

import pytest

from hvlab.powershell.catalog import Catalog
from hvlab.powershell.scripts import load_packaged_scripts, validate_script_commands
from simulator.cmdlets import build_registry

SCRIPTS = load_packaged_scripts()
# name -> {parameter: mandatory}
CONTRACT: dict[str, dict[str, bool]] = {
    "guest/probe": {"VMName": True, "Credential": True},
    "guest/set-ipv4": {"VMName": True, "Credential": True, "MacAddress": True, "IPAddress": True,
                       "PrefixLength": True, "Gateway": False, "Dns": False,
                       "InterfaceAlias": False},
    "guest/telnet-server": {"VMName": True, "Credential": True, "UserCredential": True,
                            "Group": False},
    "guest/rdp-port": {"VMName": True, "Credential": True, "Port": True},
    "guest/rras-nat": {"VMName": True, "Credential": True, "PublicInterface": True,
                       "PrivateInterfaces": True, "Mappings": False},
    "host/offline-guest-config": {"VhdPath": True, "ConfigJson": True, "UserCredential": False},
    "host/purge-tickets": {},
    "host/ntfs-grant": {"Path": True, "Account": True, "Rights": False, "Inherit": False},
    "host/test-port": {"ComputerName": True, "Port": True},
}  # fmt: skip
CREDENTIALS = {("guest/probe", "Credential"), ("guest/set-ipv4", "Credential"),
               ("guest/telnet-server", "Credential"), ("guest/telnet-server", "UserCredential"),
               ("guest/rdp-port", "Credential"), ("guest/rras-nat", "Credential")}  # fmt: skip


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def test_every_contracted_script_is_packaged() -> None:
    assert set(CONTRACT) <= set(SCRIPTS)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_commands_bind_in_the_catalogue(name: str, catalog: Catalog) -> None:
    info, text = SCRIPTS[name]
    assert text.startswith(f"# hvlab-script: {name}@{info.version}\n")
    assert validate_script_commands(info, catalog) == []
    assert "$ErrorActionPreference = 'Stop'" in text


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_script_parameters(name: str) -> None:
    info, _ = SCRIPTS[name]
    assert {p.name: p.mandatory for p in info.params} == CONTRACT[name]
    for param in info.params:
        if (name, param.name) in CREDENTIALS:
            assert param.type == "PSCredential"


def test_ntfs_rights_are_a_closed_set() -> None:
    info, text = SCRIPTS["host/ntfs-grant"]
    assert info.param("Rights").validate_set == ["F", "M", "RX"]
    assert "(OI)(CI)" in text


def test_powershell_direct_scripts_use_invoke_command_vmname() -> None:
    for name in ("guest/probe", "guest/set-ipv4", "guest/telnet-server", "guest/rdp-port",
                 "guest/rras-nat"):  # fmt: skip
        info, _ = SCRIPTS[name]
        invoke = [c for c in info.commands if c.name == "Invoke-Command"]
        assert invoke and {"VMName", "Credential", "ScriptBlock"} <= set(invoke[0].named_params)


def test_offline_config_mounts_with_the_vm_off_and_dismounts() -> None:
    info, _ = SCRIPTS["host/offline-guest-config"]
    names = [c.name for c in info.commands]
    assert "Mount-VHD" in names and "Dismount-VHD" in names
    assert "klist.exe" in [c.name for c in SCRIPTS["host/purge-tickets"][0].commands]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_packaged_script_is_simulated(name: str) -> None:
    assert name in build_registry().scripts
