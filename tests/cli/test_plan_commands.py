"""`hvlab plan` shows the real commands of every step, and each of them is valid."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hvlab.powershell.catalog import Catalog
from hvlab.powershell.command import Command, Script
from hvlab.powershell.scripts import bind_script_params, load_packaged_scripts
from hvlab.specfile import load_lab
from tests.activities.test_catalogue import as_bound
from workflows.kinds import build_plan, plan_commands

ROOT = Path(__file__).resolve().parents[2]
SEED = load_lab(ROOT / "examples" / "classroom-lab.yaml")
# every example lab's plan: a unit kind the seed lacks ships an example lab that has it
EXAMPLES = [load_lab(p) for p in sorted((ROOT / "examples").glob("*.yaml"))]
EMITTED = list({c.describe(): c for lab in EXAMPLES
                for cmds in plan_commands(lab, build_plan(lab)).values() for c in cmds}.values())


@pytest.mark.parametrize("item", EMITTED, ids=[c.describe()[:70] for c in EMITTED])
def test_every_plan_command_is_valid(item: Command | Script) -> None:
    """Each command binds to a real parameter set; each script's parameters fit its param()."""
    if isinstance(item, Command):
        Catalog.load().bind(item.cmdlet, {k: as_bound(v) for k, v in item.parameters.items()})
    else:
        info, _ = load_packaged_scripts()[item.name]
        bind_script_params(info, {k: as_bound(v) for k, v in item.parameters.items()})


def test_plan_covers_the_seed_steps() -> None:
    """The seed's plan emits the commands the seed runs by hand (switches, VMs, KCD, NAT...)."""
    text = "\n".join(c.describe() for cmds in plan_commands(SEED, build_plan(SEED)).values()
                      for c in cmds)
    for expected in (
        "New-VMSwitch -Name External -NetAdapterName Ethernet0 -AllowManagementOS $true",
        "Install-WindowsFeature -Name Hyper-V -IncludeManagementTools",
        "New-VM -Name win2003-1 -Generation 1 -MemoryStartupBytes 536870912",
        "-IsLegacy $true",
        "New-SmbShare -Name smb -Path C:\\smb",
        "'msDS-AllowedToDelegateTo'='Microsoft Virtual System Migration Service/SVR2'",
        "Set-ADAccountControl -Identity 'SVR1$' -TrustedToAuthForDelegation $true",
        "Enable-VMMigration",
        "Test-NetConnection -ComputerName 192.168.1.111 -Port 35000",
        "-KerberosAuthenticationPort 8080",
    ):
        assert expected in text, expected
    assert "Pa55" not in text and "<credential domain-admin>" in text


@pytest.mark.integration
def test_plan_json_lists_commands_per_step() -> None:
    """`hvlab plan --json` carries each step's commands."""
    result = subprocess.run([str(Path(sys.executable).parent / "hvlab"), "plan",
                             str(ROOT / "examples" / "classroom-lab.yaml"), "--json"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    units = {u["id"]: u for u in json.loads(result.stdout)["units"]}
    steps = {s["name"]: s for s in units["vm-deploy:win2003-1"]["steps"]}
    assert steps["create"]["commands"][0].startswith("New-VM -Name win2003-1")
    assert steps["offline-config"]["commands"][0].startswith("& host/offline-guest-config.ps1")
