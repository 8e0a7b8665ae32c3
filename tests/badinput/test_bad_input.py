"""Bad input: invalid lab files and CLI invocations are refused with exit code 2, a message
naming the field (YAML path or option), no traceback, and no command sent to any host.

A simulated fleet of the seed lab runs for the whole module (its home is ``HVLAB_HOME``, so
``--sim`` resolves to it) and must see no connection and no command at all; Temporal is
pointed at a closed port, so a command that got past validation could not start anything
either (it would fail with a different message and the test would say so).

- SPEC_CASES: hand-written broken lab files (mutations of the seed, raw text, files);
- CLI_CASES: hand-written bad invocations of every command group;
- test_generated_mutations: hypothesis mutations derived from the LabSpec JSON Schema (drop
  a required field, swap a value's type, inject an unknown key, break a reference);
- a subset of both runs through the real ``hvlab`` executable (SUBPROCESS), the rest through
  ``starter.cli.run`` in-process for speed.
"""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from hvlab.settings import get_settings
from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from hvlab.temporal import free_local_port
from simulator.fleet import Fleet

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "classroom-lab.yaml"
HVLAB = str(Path(sys.executable).parent / "hvlab")
SEED_DATA: dict[str, Any] = json.loads(json.dumps(YAML(typ="safe").load(SEED.read_text())))


def dump(data: Any) -> str:
    buffer = io.StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.dump(data, buffer)
    return buffer.getvalue()


# --------------------------------------------------------------------------- the fleet


@dataclass
class Env:
    fleet: Fleet
    home: Path
    tmp: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """The seed's fleet (ephemeral ports on 127.0.0.x, control API on) under a module home;
    the process environment points the in-process CLI at it and at a closed Temporal port."""
    home = tmp_path_factory.mktemp("badinput-home")
    tmp = tmp_path_factory.mktemp("badinput-files")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HVLAB_")}
    env.update(HVLAB_HOME=str(home), HVLAB_TEMPORAL_ADDRESS=f"127.0.0.1:{free_local_port()}",
               HVLAB_CONNECT_TIMEOUT="1", HVLAB_LOG_FORMAT="console")
    saved = dict(os.environ)
    with Fleet(load_lab(SEED), home, speed=0, fresh=True, port=0, control=True,
               max_receive_wait=2.0) as fleet:
        os.environ.clear()
        os.environ.update(env)
        get_settings.cache_clear()
        try:
            yield Env(fleet, home, tmp, env)
        finally:
            os.environ.clear()
            os.environ.update(saved)
            get_settings.cache_clear()


def assert_no_host_reached(world: Env) -> None:
    """No WinRM connection, no command on any host, no lab registered for a worker."""
    counters = world.fleet.state()["counters"]
    assert all(not c for c in counters.values()), counters
    accepted = {n: s.connections_accepted for n, s in world.fleet.servers.items()}
    assert not any(accepted.values()), accepted
    assert not (world.home / "labs").exists()


def cli_inprocess(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from starter.cli import run

    code = run(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def cli_subprocess(argv: list[str], world: Env) -> tuple[int, str]:
    result = subprocess.run([HVLAB, *argv], env=world.env, capture_output=True, text=True,
                            timeout=60)
    return result.returncode, result.stdout + result.stderr


def check(code: int, output: str, names: str, world: Env) -> None:
    assert code == 2, f"exit {code}:\n{output}"
    assert names in output, f"{names!r} not named in:\n{output}"
    assert "Traceback" not in output, output
    assert_no_host_reached(world)


# --------------------------------------------------------------------------- spec cases

Mutation = Callable[[dict[str, Any]], Any]


def edit(fn: Mutation) -> Callable[[], str]:
    def text() -> str:
        data = copy.deepcopy(SEED_DATA)
        fn(data)
        return dump(data)
    return text


def raw(text: str) -> Callable[[], str]:
    return lambda: text


def seed_replace(old: str, new: str) -> Callable[[], str]:
    def text() -> str:
        original = SEED.read_text()
        assert old in original
        return original.replace(old, new, 1)
    return text


def set_at(path: str, value: Any) -> Mutation:
    """Set a dotted path such as ``vms.0.memory`` (list indexes as numbers)."""
    def fn(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return fn


def drop(path: str) -> Mutation:
    def fn(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[int(last) if isinstance(node, list) else last]
    return fn


def both(*fns: Mutation) -> Mutation:
    def fn(data: dict[str, Any]) -> None:
        for f in fns:
            f(data)
    return fn


def bomb() -> str:
    lines = ['lol0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        lines.append(f"lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    return SEED.read_text() + "\n".join(lines) + "\n"


def dup_vm(data: dict[str, Any]) -> None:
    data["vms"].append(copy.deepcopy(data["vms"][0]))


def dup_host(data: dict[str, Any]) -> None:
    data["hosts"][2]["name"] = "svr1"


def dup_switch(data: dict[str, Any]) -> None:
    data["hosts"][1]["switches"][3]["name"] = "internal"


def dup_golden(data: dict[str, Any]) -> None:
    data["golden_images"][1]["name"] = "win2003-golden"


def dup_checkpoint(data: dict[str, Any]) -> None:
    data["checkpoints"].append({"name": "baseline"})


SPEC_CASES: list[tuple[str, Callable[[], str], str]] = [
    # top level
    ("lab-int", edit(set_at("lab", 5)), "lab:"),
    ("lab-pattern", edit(set_at("lab", "Classroom Lab!")), "lab:"),
    ("lab-missing", edit(drop("lab")), "lab:"),
    ("domain-missing", edit(drop("domain")), "domain:"),
    ("unknown-top-key", edit(set_at("vm", [])), "vm:"),
    ("hosts-empty", edit(set_at("hosts", [])), "hosts:"),
    ("hosts-mapping", edit(set_at("hosts", {"DC1": {"role": "dc"}})), "hosts:"),
    ("credentials-list", edit(set_at("credentials", ["domain-admin"])), "credentials:"),
    # domain
    ("domain-fqdn", edit(set_at("domain.fqdn", "kosa")), "domain.fqdn:"),
    ("domain-netbios-long", edit(set_at("domain.netbios", "KOSAKOSAKOSAKOSA")),
     "domain.netbios:"),
    ("domain-dc-unknown", edit(set_at("domain.dc", "DC9")), "domain.dc:"),
    ("domain-dc-not-dc", edit(set_at("domain.dc", "SVR1")), "domain.dc:"),
    ("domain-admin-unknown", edit(set_at("domain.admin_credential", "root")),
     "domain.admin_credential:"),
    # credentials (secrets are references only)
    ("secret-inline", edit(set_at("credentials.domain-admin.secret", "P@ssw0rd!")),
     "credentials.domain-admin.secret:"),
    ("secret-env-empty", edit(set_at("credentials.local-admin.secret", "env:")),
     "credentials.local-admin.secret:"),
    ("secret-env-bad-name", edit(set_at("credentials.teluser.secret", "env:1PASSWORD")),
     "credentials.teluser.secret:"),
    ("secret-unknown-scheme", edit(set_at("credentials.guest-admin.secret", "vault:kv/x")),
     "credentials.guest-admin.secret:"),
    ("secret-int", edit(set_at("credentials.guest-admin.secret", 123456)),
     "credentials.guest-admin.secret:"),
    ("username-missing", edit(drop("credentials.domain-admin.username")),
     "credentials.domain-admin.username:"),
    ("credential-extra", edit(set_at("credentials.domain-admin.password", "x")),
     "credentials.domain-admin.password:"),
    # hosts
    ("host-name-long", edit(set_at("hosts.1.name", "SVR1-IS-TOO-LONG")), "hosts[1].name:"),
    ("host-name-slash", edit(set_at("hosts.1.name", "SVR/1")), "hosts[1].name:"),
    ("host-duplicate", edit(dup_host), "hosts[2].name:"),
    ("host-role", edit(set_at("hosts.1.role", "router")), "hosts[1].role:"),
    ("host-connection-missing", edit(drop("hosts.1.connection")), "hosts[1].connection:"),
    ("host-port-high", edit(set_at("hosts.1.connection.port", 70000)),
     "hosts[1].connection.port:"),
    ("host-port-zero", edit(set_at("hosts.1.connection.port", 0)), "hosts[1].connection.port:"),
    ("host-port-word", edit(set_at("hosts.2.connection.port", "winrm")),
     "hosts[2].connection.port:"),
    ("host-transport", edit(set_at("hosts.1.connection.transport", "ftp")),
     "hosts[1].connection.transport:"),
    ("host-auth", edit(set_at("hosts.1.connection.auth", "digest")),
     "hosts[1].connection.auth:"),
    ("host-credential-unknown", edit(set_at("hosts.2.connection.credential", "nobody")),
     "hosts[2].connection.credential:"),
    ("host-address-empty", edit(set_at("hosts.0.connection.address", "")),
     "hosts[0].connection.address:"),
    ("host-unknown-key", edit(set_at("hosts.1.ram", "16GB")), "hosts[1].ram:"),
    ("host-memory-word", edit(set_at("hosts.1.memory", "lots")), "hosts[1].memory:"),
    ("host-join-domain-word", edit(set_at("hosts.1.join_domain", "perhaps")),
     "hosts[1].join_domain:"),
    ("dc-with-switches", edit(set_at("hosts.0.switches", [{"name": "X", "type": "Private"}])),
     "hosts[0].role:"),
    ("switch-type", edit(set_at("hosts.1.switches.2.type", "Bridge")),
     "hosts[1].switches[2].type:"),
    ("switch-subnet-prefix", edit(set_at("hosts.1.switches.1.subnet", "10.10.10.0/33")),
     "hosts[1].switches[1].subnet:"),
    ("switch-subnet-hostbits", edit(set_at("hosts.1.switches.1.subnet", "10.10.10.1/24")),
     "hosts[1].switches[1].subnet:"),
    ("switch-subnet-overlap", edit(set_at("hosts.2.switches.3.subnet", "10.10.0.0/16")),
     "hosts[2].switches[3].subnet:"),
    ("switch-duplicate", edit(dup_switch), "hosts[1].switches[3].name:"),
    ("switch-external-no-adapter", edit(drop("hosts.1.switches.0.adapter")),
     "hosts[1].switches[0].adapter:"),
    ("switch-private-adapter", edit(set_at("hosts.2.switches.2.adapter", "Ethernet1")),
     "hosts[2].switches[2].adapter:"),
    ("switch-name-star", edit(set_at("hosts.2.switches.2.name", "Priv*ate")),
     "hosts[2].switches[2].name:"),
    ("migration-concurrency", edit(set_at("hosts.1.migration.max_concurrent", 0)),
     "hosts[1].migration.max_concurrent:"),
    ("migration-network", edit(set_at("hosts.1.migration.networks", ["300.1.1.0/24"])),
     "hosts[1].migration.networks[0]:"),
    ("migration-auth", edit(set_at("hosts.2.migration.authentication", "NTLM")),
     "hosts[2].migration.authentication:"),
    # golden images
    ("golden-generation", edit(set_at("golden_images.0.generation", 3)),
     "golden_images[0].generation:"),
    ("golden-size", edit(set_at("golden_images.1.size", "8 bananas")), "golden_images[1].size:"),
    ("golden-duplicate", edit(dup_golden), "golden_images[1].name:"),
    ("golden-path-missing", edit(drop("golden_images.0.path")), "golden_images[0].path:"),
    # VMs
    ("vm-host-unknown", edit(set_at("vms.0.host", "SVR9")), "vms[0].host:"),
    ("vm-host-dc", edit(set_at("vms.1.host", "DC1")), "vms[1].host:"),
    ("vm-memory-unit", edit(set_at("vms.0.memory", "1 parsec")), "vms[0].memory:"),
    ("vm-memory-small", edit(set_at("vms.0.memory", "16MB")), "vms[0].memory:"),
    ("vm-memory-odd", edit(set_at("vms.1.memory", "513MB")), "vms[1].memory:"),
    ("vm-memory-negative", edit(set_at("vms.2.memory", -1)), "vms[2].memory:"),
    ("vm-memory-list", edit(set_at("vms.3.memory", [1, 2])), "vms[3].memory:"),
    ("vm-generation", edit(set_at("vms.3.generation", "two")), "vms[3].generation:"),
    ("vm-processors", edit(set_at("vms.0.processors", 0)), "vms[0].processors:"),
    ("vm-golden-unknown", edit(set_at("vms.0.disk.golden", "win2019-golden")),
     "vms[0].disk.golden:"),
    ("vm-disk-mode", edit(set_at("vms.0.disk.mode", "thin")), "vms[0].disk.mode:"),
    ("vm-disk-missing", edit(drop("vms.1.disk")), "vms[1].disk:"),
    ("vm-disk-unc-unknown-share", edit(set_at("vms.2.disk.path", "\\\\DC1\\nope\\x.vhdx")),
     "vms[2].disk.path:"),
    ("vm-switch-unknown", edit(set_at("vms.0.nics.1.switch", "Internal9")),
     "vms[0].nics[1].switch:"),
    ("vm-ip-octet", edit(set_at("vms.0.nics.1.ipv4", "10.10.10.300/24")),
     "vms[0].nics[1].ipv4:"),
    ("vm-ip-outside-subnet", edit(set_at("vms.1.nics.0.ipv4", "10.99.0.5/24")),
     "vms[1].nics[0].ipv4:"),
    ("vm-ip-duplicate", edit(set_at("vms.1.nics.0.ipv4", "10.10.10.1/24")),
     "vms[1].nics[0].ipv4:"),
    ("vm-gateway", edit(set_at("vms.1.nics.0.gateway", "gateway")), "vms[1].nics[0].gateway:"),
    ("vm-dns", edit(set_at("vms.0.nics.0.dns", ["8.8.8"])), "vms[0].nics[0].dns[0]:"),
    ("vm-guest-os", edit(set_at("vms.0.guest.os", "windows95")), "vms[0].guest.os:"),
    ("vm-guest-missing", edit(drop("vms.3.guest")), "vms[3].guest:"),
    ("vm-duplicate", edit(dup_vm), "vms[4].name:"),
    ("vm-unknown-key", edit(set_at("vms.0.cpus", 2)), "vms[0].cpus:"),
    ("vm-rdp-port", edit(set_at("vms.2.guest.rdp.port", 70000)), "vms[2].guest.rdp.port:"),
    ("vm-telnet-credential", edit(set_at("vms.1.guest.telnet.users.0.credential", "nobody")),
     "vms[1].guest.telnet.users[0].credential:"),
    ("vm-name-pipe", edit(set_at("vms.3.name", "Linux|01")), "vms[3].name:"),
    # NAT, shares, delegation, replication, checkpoints, reset
    ("nat-kind", edit(set_at("nat.0.kind", "pf")), "nat[0].kind:"),
    ("nat-vm-unknown", edit(set_at("nat.0.vm", "router9")), "nat[0].vm:"),
    ("nat-forward-port", edit(set_at("nat.0.forwards.0.external_port", 0)),
     "nat[0].forwards[0].external_port:"),
    ("nat-forward-vm", edit(set_at("nat.0.forwards.1.to_vm", "win2003-9")),
     "nat[0].forwards[1].to_vm:"),
    ("nat-internal-empty", edit(set_at("nat.0.internal", [])), "nat[0].internal:"),
    ("share-host-unknown", edit(set_at("shares.0.host", "NAS1")), "shares[0].host:"),
    ("share-name", edit(set_at("shares.0.name", "sm/b")), "shares[0].name:"),
    ("share-access", edit(set_at("shares.0.grants.0.access", "Write")),
     "shares[0].grants[0].access:"),
    ("delegation-host", edit(set_at("delegation.0.host", "SVR9")), "delegation[0].host:"),
    ("delegation-to-empty", edit(set_at("delegation.0.to", [])), "delegation[0].to:"),
    ("delegation-target", edit(set_at("delegation.0.to.0.target", "SVR9")),
     "delegation[0].to[0].target:"),
    ("replication-frequency", edit(set_at("replication.0.frequency", 60)),
     "replication[0].frequency:"),
    ("replication-vm", edit(set_at("replication.0.vm", "Linux02")), "replication[0].vm:"),
    ("replication-same-host", edit(set_at("replication.0.replica", "SVR2")),
     "replication[0].replica:"),
    ("replication-port", edit(set_at("replication.0.port", 99999)), "replication[0].port:"),
    ("checkpoint-vm", edit(set_at("checkpoints.0.vms", ["Linux01", "nosuchvm"])),
     "checkpoints[0].vms[1]:"),
    ("checkpoint-duplicate", edit(dup_checkpoint), "checkpoints[1].name:"),
    ("reset-checkpoint", edit(set_at("reset.checkpoint", "golden")), "reset.checkpoint:"),
    ("reset-cron", edit(set_at("reset.cron", "every morning")), "reset.cron:"),
    ("several-at-once", edit(both(set_at("vms.0.memory", "1 parsec"),
                                  set_at("hosts.1.connection.port", 0))),
     "hosts[1].connection.port:"),
    # raw text and files
    ("empty-file", raw(""), "<file>: a lab file must be a YAML mapping"),
    ("yaml-list", raw("- lab: classroom\n"), "<file>: a lab file must be a YAML mapping"),
    ("yaml-scalar", raw("classroom\n"), "<file>: a lab file must be a YAML mapping"),
    ("yaml-syntax", raw("lab: classroom\nhosts: [\n"), "YAML syntax error"),
    ("yaml-tab", raw("lab: x\n\tdomain: y\n"), "YAML syntax error"),
    ("yaml-duplicate-key", seed_replace("lab: classroom\n", "lab: classroom\nlab: other\n"),
     'duplicate key "lab"'),
    ("yaml-bomb", bomb, "YAML aliases are expanded"),
    ("yaml-deep", raw("lab: " + "[" * 5000 + "]" * 5000 + "\n"), "nested more than 64"),
    ("yaml-python-tag", seed_replace("lab: classroom", "lab: !!python/object/apply:os.system "
                                     "['echo pwned']"), "lab:"),
    ("yaml-unknown-alias", seed_replace("switches: *lab-switches", "switches: *no-such"),
     "YAML syntax error"),
    ("wrong-lab-name", seed_replace("lab: classroom", "lab: Classroom_2024"), "lab:"),
    ("reset-timezone-missing", edit(drop("reset.timezone")), "reset:"),
    ("reset-timezone-unknown", edit(set_at("reset.timezone", "Seoul")), "reset.timezone:"),
]

FILE_CASES: list[tuple[str, str, str]] = [
    # (id, which file, named in the message)
    ("missing-file", "missing", "cannot read file"),
    ("directory", "directory", "cannot read file"),
    ("binary", "binary", "file is not UTF-8 text"),
]


def spec_file(world: Env, case_id: str, text: Callable[[], str]) -> Path:
    path = world.tmp / f"{case_id}.yaml"
    path.write_text(text())
    return path


def special_file(world: Env, which: str) -> Path:
    if which == "missing":
        return world.tmp / "no-such-lab.yaml"
    if which == "directory":
        return world.tmp
    path = world.tmp / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00lab\x00\x9c")
    return path


# the commands that take a lab file, with the arguments after it
FILE_COMMANDS = [
    ["plan"], ["up", "--sim"], ["doctor", "--sim"], ["down", "--sim"],
    ["migrate", "win2003-2", "--to", "SVR2", "--sim"], ["replicate", "Linux01", "--to", "SVR1"],
    ["failover", "Linux01"], ["checkpoint", "baseline"], ["reset"],
    ["schedule", "reset", "--cron", "0 6 * * 1-5"],
]


def with_file(command: list[str], path: Path) -> list[str]:
    """``command`` with the lab file where it belongs (after the subcommand)."""
    split = 2 if command[0] == "schedule" else 1
    return [*command[:split], str(path), *command[split:]]


@pytest.mark.parametrize(("case_id", "text", "names"), SPEC_CASES,
                         ids=[c[0] for c in SPEC_CASES])
def test_invalid_lab_file(world: Env, capsys: pytest.CaptureFixture[str], case_id: str,
                          text: Callable[[], str], names: str) -> None:
    """Each broken lab file, given to a command that takes one (rotating over all of them),
    exits 2 listing the problem at its YAML path; a secret written inline is not echoed."""
    path = spec_file(world, case_id, text)
    command = FILE_COMMANDS[SPEC_CASES.index((case_id, text, names)) % len(FILE_COMMANDS)]
    code, output = cli_inprocess(with_file(command, path), capsys)
    check(code, output, names, world)
    assert "invalid lab file" in output
    assert "P@ssw0rd!" not in output


@pytest.mark.parametrize(("case_id", "which", "names"), FILE_CASES,
                         ids=[c[0] for c in FILE_CASES])
def test_unreadable_lab_file(world: Env, capsys: pytest.CaptureFixture[str], case_id: str,
                             which: str, names: str) -> None:
    path = special_file(world, which)
    for command in (["plan"], ["up", "--sim"], ["doctor", "--sim"]):
        code, output = cli_inprocess(with_file(command, path), capsys)
        check(code, output, names, world)
        assert str(path) in output


# --------------------------------------------------------------------------- CLI cases

S = str(SEED)
CLI_CASES: list[tuple[str, list[str], str]] = [
    ("no-command", ["bogus"], "No such command 'bogus'"),
    ("plan-no-file", ["plan"], "Missing argument 'file'"),
    ("plan-unknown-option", ["plan", S, "--jsn"], "--jsn"),
    ("up-only", ["up", S, "--sim", "--only", "vm-deploy"], "--only"),
    ("up-watch-value", ["up", S, "--watch=yes"], "--watch"),
    ("down-force-value", ["down", S, "--force=yes"], "--force"),
    ("migrate-mode", ["migrate", S, "win2003-2", "--to", "SVR2", "--mode", "teleport"],
     "--mode"),
    ("migrate-no-to", ["migrate", S, "win2003-2", "--sim"], "--to:"),
    ("migrate-no-vm", ["migrate", S], "Missing argument 'vm'"),
    ("migrate-to-itself-host-unknown", ["migrate", S, "Linux01", "--to", "svr3"], "--to:"),
    ("migrate-storage-to-dc", ["migrate", S, "win2003-1", "--to", "DC1", "--mode", "smb"],
     "--to:"),
    ("replicate-to-dc", ["replicate", S, "Linux01", "--to", "DC1"], "--to:"),
    ("replicate-unknown-vm", ["replicate", S, "linux99", "--to", "SVR1"], "VM:"),
    ("failover-timeout", ["failover", S, "Linux01", "--approval-timeout", "soon"],
     "--approval-timeout"),
    ("failover-unknown-vm", ["failover", S, "Linux99", "--sim"], "VM:"),
    ("checkpoint-unknown", ["checkpoint", S, "nosuch", "--sim"], "NAME:"),
    ("checkpoint-missing-name", ["checkpoint", S], "Missing argument 'name'"),
    ("reset-unknown-checkpoint", ["reset", S, "--checkpoint", "nosuch", "--sim"],
     "--checkpoint:"),
    ("schedule-cron", ["schedule", "reset", S, "--cron", "every morning"], "--cron"),
    ("schedule-no-cron", ["schedule", "reset", "@NORESET@", "--checkpoint", "baseline",
                          "--timezone", "Asia/Seoul"], "--cron:"),
    ("down-no-terminal", ["down", S, "--sim"], "--yes:"),
    ("watch-and-no-wait", ["up", S, "--sim", "--watch", "--no-wait"], "--no-wait"),
    ("schedule-unknown-checkpoint", ["schedule", "reset", S, "--cron", "0 6 * * *",
                                     "--checkpoint", "nosuch"], "--checkpoint:"),
    ("schedule-timezone-unknown", ["schedule", "reset", S, "--cron", "0 6 * * *",
                                   "--timezone", "Mars/Olympus"], "--timezone:"),
    ("schedule-no-timezone", ["schedule", "reset", "@NORESET@", "--cron", "0 6 * * *"],
     "--timezone:"),
    ("schedule-pause-no-id", ["schedule", "pause"], "Missing argument 'schedule_id'"),
    ("schedule-bogus", ["schedule", "bogus"], "No such command 'bogus'"),
    ("schedule-health-every", ["schedule", "health", S, "--every", "1s"], "--every"),
    ("cancel-no-id", ["cancel"], "Missing argument 'workflow_id'"),
    ("history-no-id", ["history"], "Missing argument 'workflow_id'"),
    ("watch-no-id", ["watch"], "Missing argument 'workflow_id'"),
    ("approve-no-id", ["approve"], "Missing argument 'workflow_id'"),
    ("status-limit", ["status", "--limit", "many"], "--limit"),
    ("dev-port", ["dev", "--port", "notaport"], "--port"),
    ("sim-state-option", ["sim", "state", "--yaml"], "--yaml"),
]

# the ``sim serve`` cases would serve in the foreground if validation let them through: they
# only run as subprocesses with a timeout
SIM_SERVE_CASES: list[tuple[str, list[str], str]] = [
    ("sim-serve-speed", ["sim", "serve", S, "--speed", "fast"], "--speed"),
    ("sim-serve-speed-negative", ["sim", "serve", S, "--speed", "-1"], "--speed"),
    ("sim-serve-port", ["sim", "serve", S, "--port", "99999"], "--port"),
    ("sim-serve-faults-missing", ["sim", "serve", S, "--faults", "/nonexistent/plan.yaml"],
     "--faults"),
    ("sim-serve-faults-invalid", ["sim", "serve", S, "--faults", "@PLAN@"],
     "--faults: faults[0].type"),
    ("sim-serve-faults-syntax", ["sim", "serve", S, "--faults", "@BROKEN@"], "--faults"),
    ("sim-serve-bad-lab", ["sim", "serve", "@LAB@"], "hosts[1].switches[1].subnet:"),
    ("sim-faults-invalid", ["sim", "faults", "@PLAN@"], "FILE: faults[0].type"),
]


def fill(argv: list[str], world: Env) -> list[str]:
    plan = world.tmp / "plan.yaml"
    plan.write_text("faults:\n  - {type: explode, host: SVR1}\n")
    broken = world.tmp / "broken-plan.yaml"
    broken.write_text("faults: [\n")
    lab = spec_file(world, "sim-serve-lab",
                    edit(set_at("hosts.1.switches.1.subnet", "10.10.10.0/33")))
    no_reset = spec_file(world, "no-reset-lab", edit(drop("reset")))
    swap = {"@PLAN@": str(plan), "@BROKEN@": str(broken), "@LAB@": str(lab),
            "@NORESET@": str(no_reset)}
    return [swap.get(a, a) for a in argv]


@pytest.mark.parametrize(("case_id", "argv", "names"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_invalid_invocation(world: Env, capsys: pytest.CaptureFixture[str], case_id: str,
                            argv: list[str], names: str) -> None:
    """Each bad invocation exits 2 naming the option or argument, before any host or Temporal
    is contacted."""
    code, output = cli_inprocess(fill(argv, world), capsys)
    check(code, output, names, world)


# a subset through the real executable: the console script's exit path (os._exit) too
SUBPROCESS = (
    [(c[0], with_file(FILE_COMMANDS[i % len(FILE_COMMANDS)], Path("@SPEC@")), c[2])
     for i, c in enumerate(SPEC_CASES) if i % 20 == 0]
    + [c for i, c in enumerate(CLI_CASES) if i % 4 == 0]
    + SIM_SERVE_CASES
)


@pytest.mark.integration
@pytest.mark.parametrize(("case_id", "argv", "names"), SUBPROCESS, ids=[c[0] for c in SUBPROCESS])
def test_invalid_input_through_the_executable(world: Env, case_id: str, argv: list[str],
                                              names: str) -> None:
    by_id = {c[0]: c[1] for c in SPEC_CASES}
    if case_id in by_id:
        path = str(spec_file(world, case_id, by_id[case_id]))
        argv = [path if a == "@SPEC@" else a for a in argv]
    code, output = cli_subprocess(fill(argv, world), world)
    check(code, output, names, world)


# --------------------------------------------------------------------------- generated cases

SCHEMA = LabSpec.model_json_schema()


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _object_branch(schema: dict[str, Any], value: Any) -> dict[str, Any] | None:
    """The schema branch that describes ``value`` (objects and arrays through anyOf)."""
    schema = _resolve(schema)
    for option in schema.get("anyOf", []):
        option = _resolve(option)
        if isinstance(value, dict) and option.get("type") == "object":
            return option
        if isinstance(value, list) and option.get("type") == "array":
            return option
    return schema


@dataclass(frozen=True)
class Field:
    path: tuple[str | int, ...]
    required: bool
    reference: bool


# fields whose value names another object of the lab (cross references)
REFERENCES = {
    ("domain", "dc"), ("domain", "admin_credential"), ("connection", "credential"),
    ("vms", "host"), ("disk", "golden"), ("nics", "switch"), ("guest", "credential"),
    ("users", "credential"), ("nat", "vm"), ("forwards", "to_vm"), ("shares", "host"),
    ("delegation", "host"), ("to", "target"), ("replication", "vm"),
    ("replication", "primary"), ("replication", "replica"), ("reset", "checkpoint"),
}


def fields(value: Any = None, schema: dict[str, Any] | None = None,
           path: tuple[str | int, ...] = ()) -> list[Field]:
    """Every field present in the seed, with whether the schema requires it and whether it
    refers to another object, walking the data and the LabSpec JSON Schema together."""
    value = SEED_DATA if value is None else value
    branch = _object_branch(schema or SCHEMA, value)
    found: list[Field] = []
    if isinstance(value, dict) and branch is not None:
        properties = branch.get("properties")
        required = set(branch.get("required", []))
        for key, child in value.items():
            sub = properties.get(key) if properties else branch.get("additionalProperties")
            if sub is None:
                continue
            parent = next((p for p in reversed(path) if isinstance(p, str)), "")
            found.append(Field((*path, key), key in required and properties is not None,
                               (parent, key) in REFERENCES))
            found += fields(child, sub, (*path, key))
    elif isinstance(value, list) and branch is not None and "items" in branch:
        for index, child in enumerate(value):
            found += fields(child, branch["items"], (*path, index))
    return found


FIELDS = fields()
REQUIRED = [f for f in FIELDS if f.required]
REFERENCE_FIELDS = [f for f in FIELDS if f.reference]
MAPPINGS = [f for f in FIELDS if isinstance(f.path[-1], str)]


def dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parent_of(data: Any, path: tuple[str | int, ...]) -> Any:
    node = data
    for part in path[:-1]:
        node = node[part]
    return node


def wrong_type(value: Any) -> Any:
    if isinstance(value, dict):
        return ["not", "a", "mapping"]
    if isinstance(value, list):
        return {"not": "a list"}
    return {"not": "a scalar"}


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, str, str]:
    """(kind, YAML text, the path the error must name)."""
    kind = draw(st.sampled_from(["drop-required", "swap-type", "unknown-key", "reference"]))
    data = copy.deepcopy(SEED_DATA)
    if kind == "drop-required":
        field = draw(st.sampled_from(REQUIRED))
        del parent_of(data, field.path)[field.path[-1]]
        named = dotted(field.path)
    elif kind == "swap-type":
        field = draw(st.sampled_from(FIELDS))
        parent = parent_of(data, field.path)
        parent[field.path[-1]] = wrong_type(parent[field.path[-1]])
        named = dotted(field.path)
    elif kind == "unknown-key":
        field = draw(st.sampled_from([f for f in MAPPINGS
                                      if isinstance(parent_of(data, (*f.path, "x")), dict)]))
        key = draw(st.sampled_from(["zz_unknown", "Name", "vmName", "memory_mb"]))
        target = parent_of(data, (*field.path, key))
        if key in target:
            key = "zz_unknown"
        target[key] = 1
        named = dotted((*field.path, key))
    else:
        field = draw(st.sampled_from(REFERENCE_FIELDS))
        parent_of(data, field.path)[field.path[-1]] = "zz-nowhere"
        named = dotted(field.path)
    return kind, dump(data), named


def test_schema_walk_finds_the_interesting_fields() -> None:
    """The generator has material: required fields, references and mappings of every kind."""
    assert ("vms", 0, "memory") in {f.path for f in REQUIRED}
    assert ("hosts", 1, "connection", "credential") in {f.path for f in REFERENCE_FIELDS}
    assert ("vms", 3, "nics", 0, "switch") in {f.path for f in REFERENCE_FIELDS}
    assert len(REQUIRED) > 50 and len(REFERENCE_FIELDS) > 15 and len(FIELDS) > 150


# A generated run (soak tier): 60 cases in `make test`, HVLAB_GENERATED_CASES (300 in `make
# chaos`) otherwise. Each case checks on its own that no host was reached.
GENERATED_CASES = int(os.environ.get("HVLAB_GENERATED_CASES") or 60)


@pytest.mark.soak
@settings(max_examples=GENERATED_CASES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(case=mutations())
def test_generated_mutations(world: Env, capsys: pytest.CaptureFixture[str],
                             case: tuple[str, str, str]) -> None:
    """A mutated seed (required field dropped, value of the wrong type, unknown key, dangling
    reference) exits 2 naming the mutated field's YAML path."""
    _kind, text, named = case
    path = world.tmp / "generated.yaml"
    path.write_text(text)
    code, output = cli_inprocess(["plan", str(path)], capsys)
    check(code, output, f"{named}:", world)


# --------------------------------------------------------------------------- the end state


@pytest.mark.integration
def test_the_fleet_saw_nothing(world: Env) -> None:
    """After every case above: `hvlab sim state --json` shows no command on any host."""
    code, output = cli_subprocess(["sim", "state", "--json"], world)
    assert code == 0, output
    state = json.loads(output)
    assert set(state["hosts"]) == {"DC1", "SVR1", "SVR2"}
    assert all(not counts for counts in state["counters"].values()), state["counters"]
    assert_no_host_reached(world)
