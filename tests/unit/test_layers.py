"""The daemon's modules read top-down: each imports only from its own floor or below.

The floors are the table in docs/architecture.md ("## Floors"); this test reads it, so the
document and the code cannot drift apart. Every import counts — at module level, inside a
function (the lazy heavy ones) and under ``TYPE_CHECKING`` — because each is a dependency a
reader has to follow.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "lofi_daemon"


def read_floors(markdown: str) -> dict[str, int]:
    """Room name (module or package under lofi_daemon, ``__init__`` = the package) -> floor."""
    section = markdown.split("## Floors", 1)[1].split("\n## ", 1)[0]
    floors: dict[str, int] = {}
    for match in re.finditer(r"^\|\s*(\d+)\s*\|([^|]*)\|", section, re.M):
        for room in re.findall(r"`([^`]+)`", match.group(2)):
            assert room not in floors, f"{room} is on two floors"
            floors[room] = int(match.group(1))
    return floors


def module_names(src: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package under ``src``."""
    names = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``module`` imports, wherever in the file the import is."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # ``from pkg import name``: the submodule when ``name`` is one, else pkg itself
            targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else origin for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # ``import a.b.c`` of a package's attribute
                target = target.rpartition(".")[0]
            if target.startswith(PACKAGE) and target != module:
                found.add(target)
    return found


def floor_of(module: str, floors: dict[str, int]) -> int | None:
    """The floor of the longest room name that contains ``module``."""
    rel = module[len(PACKAGE) + 1:] if module != PACKAGE else "__init__"
    parts = rel.split(".")
    for n in range(len(parts), 0, -1):
        room = ".".join(parts[:n])
        if room in floors:
            return floors[room]
    return None


def layer_problems(src: Path, floors: dict[str, int]) -> list[str]:
    modules = module_names(src)
    graph = {m: imports_of(m, p, set(modules)) for m, p in modules.items()}
    problems = [f"{m} is on no floor of docs/architecture.md" for m in modules if floor_of(m, floors) is None]
    for module, targets in sorted(graph.items()):
        own = floor_of(module, floors)
        for target in sorted(targets):
            theirs = floor_of(target, floors)
            if own is not None and theirs is not None and theirs > own:
                problems.append(f"{module} (floor {own}) imports {target} (floor {theirs})")
    problems += [f"import circle: {' -> '.join(c)}" for c in circles(graph)]
    return problems


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_no_module_imports_from_a_floor_above_its_own_and_none_import_in_a_circle():
    floors = read_floors((REPO / "docs" / "architecture.md").read_text(encoding="utf-8"))
    assert floors, "docs/architecture.md has no floors table"
    assert layer_problems(REPO / "src", floors) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def test_the_check_catches_a_lazy_upward_import_a_circle_and_a_module_with_no_floor(tmp_path):
    src = _tree(tmp_path, {
        "__init__.py": "",
        "errors.py": "",
        "app.py": "from .errors import x\n",
        "transport/__init__.py": "",
        "transport/endpoint.py": "def f():\n    from ..app import App\n",
        "models/__init__.py": "",
        "models/store.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .download import d\n",
        "models/download.py": "from . import store\n",
        "stray.py": "",
    })
    floors = read_floors("## Floors\n| floor | rooms |\n|---|---|\n| 3 | `app` |\n| 2 | `transport`, `models` |\n"
                         "| 1 | `__init__`, `errors` |\n")
    problems = layer_problems(src, floors)
    assert "lofi_daemon.transport.endpoint (floor 2) imports lofi_daemon.app (floor 3)" in problems
    assert "import circle: lofi_daemon.models.download -> lofi_daemon.models.store" in problems
    assert "lofi_daemon.stray is on no floor of docs/architecture.md" in problems
    assert len(problems) == 3
