"""The package's shape: imports run one way along the pipeline, modules stay small, each says
what it is for. A change that breaks one of these fails here, not in a later reader's head."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "thinkcost"

# The pipeline's layers, left to right: a module may import from its own layer or a layer to its
# left, never to its right. The engines know nothing of the experiment, so they come before the
# config that names them; the figures read what every stage before them wrote.
LAYERS = (
    ("__init__", "tables", "logs"),
    ("engines",),
    ("config",),
    ("staging",),
    ("inference",),
    ("evaluate",),
    ("aggregate",),
    ("analysis",),
    ("figures",),
)
LAYER = {top: index for index, tops in enumerate(LAYERS) for top in tops}

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYER[parts[1] if len(parts) > 1 else "__init__"]


def imported_modules(module: str, path: Path) -> set[str]:
    """Every thinkcost module `module` imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from thinkcost.x import y` may name a submodule y or an attribute of x.
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        found |= {name for name in names if name in MODULES and name != module}
    return found


def test_every_top_level_name_has_a_layer():
    tops = {name.split(".")[1] if "." in name else "__init__" for name in MODULES}
    assert tops <= set(LAYER), f"put {sorted(tops - set(LAYER))} in LAYERS"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_one_way(module):
    later = sorted(
        name for name in imported_modules(module, MODULES[module]) if layer(name) > layer(module)
    )
    assert not later, f"{module} imports a later stage: {later}"


def test_no_import_cycles():
    graph = {module: imported_modules(module, path) for module, path in MODULES.items()}
    # A package's __init__ re-exporting its modules is not a cycle with them.
    graph = {
        module: {name for name in names if not module.startswith(name + ".")}
        for module, names in graph.items()
    }
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for name in sorted(graph[module]):
            if state.get(name) == "open":
                cycle = [*trail[trail.index(name) :], name]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if name not in state:
                visit(name, [*trail, name])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_small_and_says_what_it_is_for(module):
    source = MODULES[module].read_text()
    tree = ast.parse(source)
    docstring = ast.get_docstring(tree)
    assert docstring and docstring.strip(), f"{module} has no docstring"
    assert len(source.splitlines()) <= MAX_MODULE_LINES, (
        f"{module} is over {MAX_MODULE_LINES} lines"
    )
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{module}: functions over {MAX_FUNCTION_LINES} lines: {long}"
