"""``exercises:`` in the lab file: schema, checks named by YAML path and line, step names,
and the way an exercise travels to a workflow (issue 15, item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter

from hvlab.exercises import describe, exercise_id
from hvlab.spec import LabSpec
from hvlab.specfile import SpecError, dump_lab, load_lab, parse_lab
from workflows.exercise import ExerciseInput

SEED = Path(__file__).resolve().parents[2] / "examples" / "classroom-lab.yaml"
BASE = SEED.read_text()
FIRST = "      - migrate: {vm: win2003-1, to: SVR2, mode: shared-nothing}\n"
FIRST_LINE = BASE[:BASE.index(FIRST)].count("\n") + 1  # where the seed file has that step

# (name, the first migrate step replaced by, expected path, expected words)
BROKEN = [
    ("unknown vm", "      - migrate: {vm: nope, to: SVR2}\n",
     "exercises[0].steps[1].migrate.vm", "unknown VM 'nope'"),
    ("dc as destination", "      - migrate: {vm: win2003-1, to: DC1}\n",
     "exercises[0].steps[1].migrate.to", "DC1 is not a Hyper-V host"),
    ("no destination", "      - migrate: {vm: win2003-1}\n",
     "exercises[0].steps[1].migrate.to", "needs the destination host"),
    ("storage without path", "      - migrate: {vm: win2003-1, mode: storage}\n",
     "exercises[0].steps[1].migrate.storage_path", "needs the destination folder"),
    ("smb with local files", "      - migrate: {vm: win2003-1, to: SVR2, mode: smb}\n",
     "exercises[0].steps[1].migrate.mode", "must be on a share"),
    ("bad mode", "      - migrate: {vm: win2003-1, to: SVR2, mode: teleport}\n",
     "exercises[0].steps[1].migrate.mode", "'teleport'"),
    ("two kinds", "      - {migrate: {vm: win2003-1, to: SVR2}, verify: {}}\n",
     "exercises[0].steps[1]", "found: migrate, verify"),
    ("no kind", "      - name: nothing\n", "exercises[0].steps[1]", "found: none"),
    ("misspelt kind", "      - migrat: {vm: win2003-1, to: SVR2}\n",
     "exercises[0].steps[1].migrat", "unknown field"),
    ("failover of a vm without replication", "      - failover: {vm: win2003-1}\n",
     "exercises[0].steps[1].failover.vm", "no replication entry"),
    ("failover to a third host", "      - failover: {vm: Linux01, to: DC1}\n",
     "exercises[0].steps[1].failover.to", "neither the primary"),
    ("unknown checkpoint", "      - checkpoint: {name: lunch}\n",
     "exercises[0].steps[1].checkpoint.name", "unknown checkpoint 'lunch'"),
    ("replicate to its primary", "      - replicate: {vm: Linux01, to: SVR2}\n",
     "exercises[0].steps[1].replicate.to", "SVR2 is the primary of Linux01"),
    ("duplicate step", "      - build:\n", "exercises[0].steps[1]",
     "duplicate step in exercise 'seed' 'build'"),
    ("bad approval timeout", "      - approval: {timeout: -5}\n",
     "exercises[0].steps[1].approval.timeout", "greater than 0"),
]


@pytest.mark.parametrize(("name", "new", "path", "words"), BROKEN, ids=[b[0] for b in BROKEN])
def test_bad_exercise_is_named_by_path_and_line(name: str, new: str, path: str,
                                                words: str) -> None:
    assert FIRST in BASE
    text = BASE.replace(FIRST, new)
    with pytest.raises(SpecError) as caught:
        parse_lab(text)
    issues = [i for i in caught.value.issues if i.path == path]
    assert issues, [str(i) for i in caught.value.issues]
    assert words in issues[0].message
    line = BASE.splitlines().index(FIRST.rstrip("\n")) + 1  # the step replaced
    assert issues[0].line == line, str(issues[0])


def test_duplicate_exercise_names() -> None:
    text = BASE + "  - name: seed\n    steps:\n      - verify:\n"
    with pytest.raises(SpecError) as caught:
        parse_lab(text)
    assert [i.path for i in caught.value.issues] == ["exercises[1].name"]


def test_the_seed_exercise_as_data() -> None:
    """The seed's class ships as data, with step names from the lab's own names."""
    spec = load_lab(SEED)
    steps = describe(spec, spec.exercise(""))
    assert [name for name, _, _ in steps] == [
        "build", "migrate-win2003-1", "migrate-win2003-3", "migrate-win2003-2",
        "replicate-Linux01", "failover-Linux01", "verify", "checkpoint-baseline"]
    assert steps[5][2] == "planned failover of Linux01 to SVR1 + reverse"
    assert exercise_id("sim.classroom", "seed") == "sim.classroom-exercise-seed"
    assert parse_lab(dump_lab(spec)) == spec


def test_an_exercise_travels_to_its_workflow_unchanged() -> None:
    """Temporal's pydantic converter carries the steps' unset kinds as nulls: they stay unset
    (a `- build:` step in YAML is the only null kind that means an empty setting)."""
    spec = load_lab(SEED)
    request = ExerciseInput(spec=spec, exercise="seed")
    converter = pydantic_data_converter.payload_converter
    [back] = converter.from_payloads(converter.to_payloads([request]), [ExerciseInput])
    assert back == request
    assert [s.kinds for s in back.spec.exercise("seed").steps] == [
        [s.kind] for s in spec.exercise("seed").steps]
    assert LabSpec.model_validate_json(spec.model_dump_json()) == spec


@pytest.mark.parametrize(("args", "words"), [
    (["run", "{bad}"], "exercises[0].steps[1].migrate.to"),
    (["run", "{seed}", "lunch"], "EXERCISE: lab classroom has no exercise 'lunch' (known: seed)"),
    (["run", "{seed}", "seed", "--from", "nap"], "--from: exercise seed has no step 'nap'"),
    (["plan", "{seed}", "--exercise", "lunch"], "--exercise: lab classroom has no exercise"),
    (["schedule", "run", "{bad}", "seed", "--cron", "0 7 * * 1"], f"line {FIRST_LINE}"),
], ids=["bad step", "unknown exercise", "unknown step", "plan unknown", "schedule bad step"])
def test_cli_refuses_a_bad_exercise_before_starting_anything(
        args: list[str], words: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Bad input exits 2 naming the YAML path (and line) or the argument, and nothing is
    registered or started (no Temporal server is needed to get there)."""
    from hvlab.settings import get_settings
    from starter.cli import run

    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace(FIRST, "      - migrate: {vm: win2003-1, to: DC1}\n"))
    monkeypatch.setenv("HVLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HVLAB_TEMPORAL_ADDRESS", "127.0.0.1:1")
    get_settings.cache_clear()
    try:
        code = run([a.format(bad=bad, seed=SEED) for a in args])
    finally:
        get_settings.cache_clear()
    said = capsys.readouterr()
    assert code == 2, said
    assert words in " ".join((said.out + said.err).split()), said
    assert not (tmp_path / "home" / "labs").exists()
