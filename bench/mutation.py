"""`make mutation`: mutation testing of the modules that carry hvlab's rules, against the fast
tier, with the score per module.

mutmut (configured in pyproject's ``[tool.mutmut]``) copies the packages into ``mutants/``,
mutates the listed modules function by function, runs the fast tests that reach each mutant
(``-m fast``), and records each mutant's outcome in ``mutants/<path>.meta``. This script runs
it, then reads those files and prints per module: mutants, killed, survived, equivalent and
the score = killed / (mutants - equivalent). A mutant counts as killed when a test failed, the
test run timed out or crashed, or the type check caught it; "no tests" counts as survived.

Equivalent mutants (changes that cannot alter behaviour) are listed with a reason in
``bench/mutation_equivalents/<module>.json`` (mutant name -> reason); a listed mutant that is
killed or no longer exists is reported as stale. Results go to
``bench/results/mutation-latest.json``; exit 1 if a module scores below ``--threshold``.

    python bench/mutation.py                      # all modules (about 20 min on 2 cores)
    python bench/mutation.py --only hvlab.spec_check   # one module's mutants
    python bench/mutation.py --report             # re-read the last run, run nothing
    python bench/mutation.py --survivors hvlab.spec_check   # list what survived, with diffs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENTS = ROOT / "bench" / "mutation_equivalents"
RESULTS = ROOT / "bench" / "results" / "mutation-latest.json"
KILLED = {1, 3, 37}  # mutmut's exit codes: a test failed (or pytest errored), type check
TIMEOUT = {36, 24, -24, 152, 255}  # the tests ran past mutmut's limit (counted as killed)
# A crashed run (-11, -9, ...) is not counted as killed: it was the harness, not a test, in the
# one case seen (a forked child with a Temporal runtime), so it stays a survivor to look at.


@dataclass
class ModuleScore:
    module: str
    path: str
    mutants: int = 0
    killed: int = 0
    timeouts: int = 0
    equivalent: int = 0
    survived: list[str] = field(default_factory=list)
    not_checked: int = 0
    stale_equivalents: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        counted = self.mutants - self.equivalent - self.not_checked
        return 1.0 if counted <= 0 else self.killed / counted


def modules() -> list[tuple[str, str]]:
    """(dotted module, path) of every module pyproject's [tool.mutmut] mutates."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return [(p.removesuffix(".py").replace("/", "."), p) for p in config["only_mutate"]]


def equivalents(module: str) -> dict[str, str]:
    path = EQUIVALENTS / f"{module}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def score(module: str, path: str) -> ModuleScore:
    result = ModuleScore(module, path)
    meta = ROOT / "mutants" / f"{path}.meta"
    if not meta.exists():
        return result
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    known = equivalents(module)
    for name, code in sorted(codes.items()):
        result.mutants += 1
        if code is None:
            result.not_checked += 1
        elif code in KILLED or code in TIMEOUT:
            result.killed += 1
            result.timeouts += code in TIMEOUT
            if name in known:
                result.stale_equivalents.append(f"{name} (killed)")
        elif name in known:
            result.equivalent += 1
        else:
            result.survived.append(name)
    result.stale_equivalents += [f"{n} (gone)" for n in known if n not in codes]
    return result


def run_mutmut(patterns: list[str], max_children: int | None) -> int:
    command = [sys.executable, "-m", "mutmut", "run", *patterns]
    if max_children:
        command[4:4] = ["--max-children", str(max_children)]
    # mutmut has its own per-mutant limit; the tiers' limits (tests/conftest.py) are for
    # unmutated code on a quiet machine, so they are stretched here.
    env = {**os.environ, "HVLAB_TEST_TIMEOUT_SCALE": "10"}
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def print_table(scores: list[ModuleScore], threshold: float) -> bool:
    ok = True
    print(f"\n{'module':38} {'mutants':>7} {'killed':>6} {'(t/o)':>5} {'surv.':>5} {'equiv.':>6} "
          f"{'score':>6}")
    for s in scores:
        flag = "" if s.score >= threshold else "  < threshold"
        ok = ok and not flag and not s.not_checked
        unchecked = f"  ({s.not_checked} not checked)" if s.not_checked else ""
        print(f"{s.module:38} {s.mutants:7} {s.killed:6} {s.timeouts:5} {len(s.survived):5} "
              f"{s.equivalent:6} {s.score:6.1%}{flag}{unchecked}")
        for stale in s.stale_equivalents:
            print(f"    stale equivalent: {stale}")
    return ok


def show_survivors(module: str) -> None:
    """Print mutmut's diff of each surviving mutant of ``module``."""
    for name in score(module, dict(modules())[module]).survived:
        subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", default=[], help="dotted module (repeat)")
    parser.add_argument("--report", action="store_true", help="only read the last run")
    parser.add_argument("--survivors", metavar="MODULE", help="show each survivor's diff")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--max-children", type=int)
    args = parser.parse_args()
    if args.survivors:
        show_survivors(args.survivors)
        return 0
    chosen = [(m, p) for m, p in modules() if not args.only or m in args.only]
    if not args.report:
        patterns = [f"{m}.*" for m in args.only]
        code = run_mutmut(patterns, args.max_children)
        if code not in (0, 1):
            print(f"mutmut exited {code}", file=sys.stderr)
            return code
    scores = [score(m, p) for m, p in chosen]
    ok = print_table(scores, args.threshold)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if not args.only:
        RESULTS.write_text(json.dumps(
            [{**asdict(s), "score": round(s.score, 4)} for s in scores], indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
