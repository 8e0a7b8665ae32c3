"""Reading and writing lab files: YAML with line numbers, every problem reported at once."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.parser import RoundTripParser

from hvlab.spec import SIM_PREFIX, LabSpec
from hvlab.spec_check import Loc, check_lab


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a lab file: dotted YAML path, 1-based line (if known), message."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.path or '<file>'}: {self.message}"


class SpecError(Exception):
    """The lab file is invalid; ``issues`` lists every problem found."""

    def __init__(self, source: str, issues: Sequence[SpecIssue]) -> None:
        self.source = source
        self.issues = list(issues)
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(f"{source}: {len(self.issues)} problem(s)\n{lines}")


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(tree: Any, loc: Loc) -> int | None:
    """The 1-based line of the deepest node of ``loc`` that exists in the parsed YAML."""
    node: Any = tree
    line: int | None = None
    for part in loc:
        if isinstance(node, CommentedMap) and isinstance(part, str) and part in node:
            line = int(node.lc.key(part)[0]) + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = int(node.lc.item(part)[0]) + 1
            node = node[part]
        else:
            break
    if line is None and hasattr(tree, "lc"):
        return int(tree.lc.line) + 1
    return line


def _pydantic_issues(error: ValidationError, tree: Any) -> list[SpecIssue]:
    issues = []
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function")))
        loc = _strip_union_tags(loc)
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; see `hvlab schema`)"
        elif _echo_input(item, loc):
            message = f"{message} (got {item['input']!r})"
        issues.append(SpecIssue(_dotted(loc), _line_of(tree, loc), message))
    return issues


def _strip_union_tags(loc: tuple[Any, ...]) -> Loc:
    # pydantic adds union member tags such as 'list[str]' or "literal['all']" to a loc
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in ("int", "str"))))


def _echo_input(item: Any, loc: Loc) -> bool:
    """Show the offending value, except for missing fields and anything under a secret."""
    if item["type"] == "missing" or "input" not in item or "secret" in loc:
        return False
    value = item["input"]
    return isinstance(value, str | int | float | bool) or value is None


# A lab file is a few levels deep and a few thousand nodes even with its anchors expanded;
# anything far beyond is a mistake or a YAML bomb, refused while it is being read.
MAX_DEPTH = 64
MAX_NODES = 100_000


class _ShapeProblem(Exception):
    def __init__(self, issue: SpecIssue) -> None:
        self.issue = issue


class _GuardedParser(RoundTripParser):
    """The round-trip parser, counting nesting depth and the nodes aliases would expand to
    (each event passes here once, so there is no second pass and nothing is expanded)."""

    def __init__(self, loader: Any) -> None:
        super().__init__(loader)
        self._depth = 0
        self._expanded = 0
        self._sizes: dict[str, int] = {}
        self._starts: list[tuple[str | None, int]] = []

    def get_event(self) -> Any:
        event = super().get_event()
        if isinstance(event, MappingStartEvent | SequenceStartEvent):
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise _ShapeProblem(SpecIssue("", event.start_mark.line + 1,
                                              f"nested more than {MAX_DEPTH} levels deep"))
            self._starts.append((event.anchor, self._expanded))
            self._expanded += 1
        elif isinstance(event, MappingEndEvent | SequenceEndEvent):
            self._depth -= 1
            anchor, start = self._starts.pop()
            if anchor:
                self._sizes[anchor] = self._expanded - start
        elif isinstance(event, ScalarEvent):
            self._expanded += 1
            if event.anchor:
                self._sizes[event.anchor] = 1
        elif isinstance(event, AliasEvent):
            self._expanded += self._sizes.get(event.anchor or "", 1)
        if self._expanded > MAX_NODES:
            line = event.start_mark.line + 1 if event.start_mark else None
            raise _ShapeProblem(SpecIssue("", line, f"more than {MAX_NODES} values once YAML "
                                          "aliases are expanded (a YAML bomb?)"))
        return event


def parse_lab(text: str, source: str = "<lab>") -> LabSpec:
    """Parse and validate lab YAML; raise SpecError listing every problem."""
    yaml = YAML(typ="rt")
    yaml.Parser = _GuardedParser
    try:
        tree = yaml.load(text)
    except _ShapeProblem as exc:
        raise SpecError(source, [exc.issue]) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        issue = SpecIssue("", line, f"YAML syntax error: {exc.problem}")
        raise SpecError(source, [issue]) from None
    except YAMLError as exc:
        raise SpecError(source, [SpecIssue("", None, f"YAML error: {exc}")]) from None
    if not isinstance(tree, CommentedMap):
        raise SpecError(source, [SpecIssue("", 1, "a lab file must be a YAML mapping")])
    try:
        spec = LabSpec.model_validate(_plain(tree))
    except ValidationError as exc:
        raise SpecError(source, _pydantic_issues(exc, tree)) from None
    problems = check_lab(spec)
    if problems:
        issues = [SpecIssue(_dotted(p.loc), _line_of(tree, p.loc), p.message) for p in problems]
        raise SpecError(source, issues)
    return spec


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def load_lab(path: str | Path) -> LabSpec:
    """Read a lab file; raise SpecError (also for a missing or unreadable file)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        issue = SpecIssue("", None, f"cannot read file: {exc.strerror}")
        raise SpecError(source, [issue]) from None
    except UnicodeDecodeError:
        raise SpecError(source, [SpecIssue("", None, "file is not UTF-8 text")]) from None
    return parse_lab(text, source)


def dump_lab(spec: LabSpec) -> str:
    """The lab as YAML; ``parse_lab(dump_lab(spec)) == spec``. The spec of a ``--sim``
    registration (lab id ``sim.<lab>``, see :mod:`hvlab.labs`) dumps as its lab file."""
    dumped = spec.model_dump(mode="json", exclude_defaults=True)
    data = {"lab": spec.lab.removeprefix(SIM_PREFIX)}
    data.update((key, value) for key, value in dumped.items() if key != "lab")
    buffer = io.StringIO()
    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    yaml.dump(data, buffer)
    return buffer.getvalue()
