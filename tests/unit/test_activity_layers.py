"""The layers of ``activities/``, read from the source with :mod:`ast`.

Lower modules (``base``: remote commands, heartbeats, shared failures; ``models``; ``marks``;
``context``) import no domain module. A domain module (one kind of step: ``host``, ``vm``,
``migration``, ...) may reuse another domain's command builders (``get_vm_command``), never
its helpers: what several domains share lives in a lower module. ``registry`` puts the
domains together and may import anything."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "activities"
LOWER = {"base", "models", "marks", "context"}
ASSEMBLERS = {"registry", "__init__"}
REUSABLE_SUFFIXES = ("_command", "_script")


def _modules() -> dict[str, Path]:
    return {p.stem: p for p in sorted(ROOT.glob("*.py"))}


def _domains() -> set[str]:
    return set(_modules()) - LOWER - ASSEMBLERS


def _imports(path: Path) -> list[tuple[str, str]]:
    """(activities module, imported name) for every ``from activities[.x] import ...``."""
    found: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module == "activities":
            found += [(a.name, "*") for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("activities."):
            module = (node.module or "").split(".", 1)[1]
            found += [(module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name.split(".", 1)[1], "*") for a in node.names
                      if a.name.startswith("activities.")]
    return found


def test_the_layers_are_as_described() -> None:
    assert {"host", "vm", "guest", "migration", "replica", "checkpoint"} <= _domains()
    assert set(_modules()) >= LOWER | ASSEMBLERS


def test_lower_modules_import_no_domain_module() -> None:
    domains = _domains()
    wrong = [(name, module) for name in LOWER for module, _ in _imports(_modules()[name])
             if module in domains or module in ASSEMBLERS]
    assert wrong == []


def test_domain_modules_take_only_command_builders_from_each_other() -> None:
    """A helper one domain takes from another (a failure constructor, a Remote, a heartbeat
    function, a constant) belongs in ``activities.base``."""
    domains = _domains()
    wrong = [f"{name} imports {imported} from activities.{module}"
             for name in sorted(domains) for module, imported in _imports(_modules()[name])
             if module in domains | ASSEMBLERS and not imported.endswith(REUSABLE_SUFFIXES)]
    assert wrong == []
