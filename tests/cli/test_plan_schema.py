"""`hvlab plan` and `hvlab schema`: through the real console script (integration), and every
broken lab file of tests/spec through ``starter.cli.run`` in-process (fast), since the
console script adds nothing to those but a process start; two of them still go through it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from tests.spec.test_spec_errors import BROKEN

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "classroom-lab.yaml"
HVLAB = str(Path(sys.executable).parent / "hvlab")


def hvlab(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HVLAB, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def hvlab_inprocess(capsys: pytest.CaptureFixture[str], *args: str
                    ) -> subprocess.CompletedProcess[str]:
    """The same command through ``starter.cli.run`` in this process."""
    from starter.cli import run

    code = run(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, captured.out, captured.err)


def check_broken(result: subprocess.CompletedProcess[str], path: str, words: str) -> None:
    assert result.returncode == 2
    assert path in result.stderr and words in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.integration
def test_plan_names_every_host_and_vm() -> None:
    """`hvlab plan` on the seed exits 0 and shows DC1, SVR1, SVR2 and all four VMs."""
    result = hvlab("plan", str(SEED))
    assert result.returncode == 0, result.stderr
    for name in ("DC1", "SVR1", "SVR2", "win2003-1", "win2003-2", "win2003-3", "Linux01"):
        assert name in result.stdout
    assert "host-prep:SVR1" in result.stdout and "nat:router" in result.stdout


@pytest.mark.integration
def test_plan_json_is_a_dag_in_dependency_order() -> None:
    """`hvlab plan --json` lists units whose dependencies all exist (a DAG)."""
    result = hvlab("plan", str(SEED), "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    ids = {u["id"] for u in plan["units"]}
    assert {"host-prep:SVR1", "host-prep:SVR2", "vm-deploy:Linux01", "replication:Linux01"} <= ids
    for unit in plan["units"]:
        assert set(unit["depends_on"]) <= ids, unit
    vm3 = next(u for u in plan["units"] if u["id"] == "vm-deploy:win2003-3")
    assert "shared-storage:DC1/smb" in vm3["depends_on"]


@pytest.mark.parametrize(("name", "old", "new", "path", "words"), BROKEN, ids=[b[0] for b in BROKEN])
def test_plan_broken_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, old: str, new: str,
    path: str, words: str
) -> None:
    """A broken lab file exits 2 with the offending path on stderr and no traceback."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(SEED.read_text().replace(old, new, 1))
    check_broken(hvlab_inprocess(capsys, "plan", str(broken)), path, words)


@pytest.mark.integration
@pytest.mark.parametrize(("name", "old", "new", "path", "words"), BROKEN[:2],
                         ids=[b[0] for b in BROKEN[:2]])
def test_plan_broken_file_exits_2_through_the_executable(
    tmp_path: Path, name: str, old: str, new: str, path: str, words: str
) -> None:
    """The console script reports a broken lab file the same way (exit 2, path, no traceback)."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(SEED.read_text().replace(old, new, 1))
    check_broken(hvlab("plan", str(broken)), path, words)


@pytest.mark.integration
def test_plan_yaml_syntax_error_exits_2(tmp_path: Path) -> None:
    """A YAML syntax error exits 2 with the line."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(SEED.read_text().replace("lab: classroom", "lab: [classroom"))
    result = hvlab("plan", str(broken))
    assert result.returncode == 2
    # the flow sequence opened on the lab line breaks at the next key, two lines below it
    line = SEED.read_text().splitlines().index("lab: classroom") + 1 + 2
    assert "YAML syntax error" in result.stderr and f"line {line}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_plan_missing_file_and_bad_option_exit_2(tmp_path: Path) -> None:
    """A missing file or an unknown option exits 2 without a traceback."""
    for args in (("plan", str(tmp_path / "nope.yaml")), ("plan", str(SEED), "--bogus")):
        result = hvlab(*args)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_schema_is_json_schema_that_accepts_the_seed() -> None:
    """`hvlab schema` prints a JSON Schema; the seed lab file validates against it."""
    result = hvlab("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(YAML(typ="safe").load(SEED.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"lab": "x"}, schema)
