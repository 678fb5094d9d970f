"""The layers of docs/design.rst, enforced by folder.

Every module under a layer's folder may import only the layers below it (a
new module can't slip out: the rule is the folder's, not a list of names),
and every module whose name ends in ``_policy`` does no I/O: it loads
without any async library, socket or ssl.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import anysoup

PACKAGE = Path(anysoup.__file__).parent

#: What each layer may import from the package (itself included). Lower
#: layers first; the root modules (``__init__``, ``__main__``, ``_version``)
#: are listed separately.
LAYERS: dict[str, set[str]] = {
    "_model": {"_model"},
    "_features": {"_model", "_features"},
    "_transport": {"_model", "_transport"},
    "_drivers": {"_model", "_transport", "_drivers"},
    "_pool": {"_model", "_transport", "_drivers", "_pool"},
    "_session": {"_model", "_features", "_transport", "_drivers", "_pool", "_session"},
    "_blocking": {"_model", "_transport", "_drivers", "_pool", "_blocking"},
    "_cli": {
        "_model",
        "_features",
        "_transport",
        "_drivers",
        "_pool",
        "_session",
        "_cli",
        "__init__",
    },
    # The public test helpers: a feature (the mock router) and a pytest plugin.
    "testing": {"_model", "_features", "testing"},
}
#: Imports allowed under ``if TYPE_CHECKING:`` only: a feature is handed its
#: session (``attach``, ``session_closed``) and names the type in annotations;
#: the test router names it by its public name (``anysoup.Session``).
TYPE_ONLY: dict[str, set[str]] = {"_features": {"_session"}, "testing": {"__init__"}}
#: Modules at the top of the package, and what they may import.
ROOT_MODULES = {
    "__init__": set(LAYERS) - {"_blocking", "testing"},
    "__main__": {"_cli"},
    "_version": set(),
    # The blocking facade: the session, and the loop thread that runs it.
    "blocking": {"_model", "_pool", "_session", "_blocking"},
}
#: Anything may read the version string.
EVERYWHERE = {"_version"}

#: What a policy module may not load, even indirectly. (h11 and wsproto are
#: sans-IO: the WebSocket extension policy is a wsproto extension, and
#: wsproto brings h11 along.)
NO_IO = {"anyio", "trio", "sniffio", "asyncio", "socket", "ssl", "select"}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _dotted(path: Path) -> list[str]:
    """``anysoup/_features/auth/manager.py`` → ``["_features", "auth", "manager"]``."""
    return list(path.relative_to(PACKAGE).with_suffix("").parts)


def _imports(path: Path) -> list[tuple[list[str], bool]]:
    """Each intra-package import as (absolute parts under anysoup, type-checking only)."""
    package = _dotted(path)[:-1]  # what a relative import starts from
    found: list[tuple[list[str], bool]] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for sub in child.body:
                    visit_one(sub, True)
                for sub in child.orelse:
                    visit_one(sub, type_only)
                continue
            visit_one(child, type_only)

    def visit_one(child: ast.AST, type_only: bool) -> None:
        if isinstance(child, ast.ImportFrom):
            if child.level:
                base = package[: len(package) - (child.level - 1)]
                if child.module:
                    found.append((base + child.module.split("."), type_only))
                else:
                    found.extend(([*base, alias.name], type_only) for alias in child.names)
            elif child.module and child.module.split(".")[0] == "anysoup":
                found.append((child.module.split(".")[1:] or ["__init__"], type_only))
        elif isinstance(child, ast.Import):
            for alias in child.names:
                if alias.name.split(".")[0] == "anysoup":
                    found.append((alias.name.split(".")[1:] or ["__init__"], type_only))
        visit(child, type_only)

    visit(ast.parse(path.read_text()), False)
    return found


def test_every_module_lives_in_a_layer() -> None:
    for path in _modules():
        parts = _dotted(path)
        if len(parts) == 1:
            assert parts[0] in ROOT_MODULES, f"{path}: a new module at the top of the package"
        else:
            assert parts[0] in LAYERS, f"{path}: {parts[0]} is not a layer of docs/design.rst"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: "/".join(_dotted(p)))
def test_module_imports_only_the_layers_below(path: Path) -> None:
    parts = _dotted(path)
    layer = parts[0]
    allowed = ROOT_MODULES[layer] if len(parts) == 1 else LAYERS[layer]
    type_only = TYPE_ONLY.get(layer, set())
    for target, is_type_only in _imports(path):
        top = target[0] if target else "__init__"
        if top in EVERYWHERE or top in allowed or (is_type_only and top in type_only):
            continue
        pytest.fail(f"{'.'.join(parts)} imports anysoup.{'.'.join(target)} ({layer} → {top})")


def test_the_layers_have_no_cycle() -> None:
    # The matrix itself is a partial order: a layer never allows one that allows it back.
    for layer, allowed in LAYERS.items():
        for other in allowed - {layer}:
            assert layer not in LAYERS.get(other, set()), (layer, other)


POLICY_MODULES = sorted(
    ".".join(["anysoup", *_dotted(p)]) for p in _modules() if p.stem.endswith("_policy")
)


def test_policy_modules_are_found() -> None:
    # The pool's bookkeeping, the parsers of every feature, proxy rules...
    assert len(POLICY_MODULES) >= 15, POLICY_MODULES
    assert "anysoup._pool.state_policy" in POLICY_MODULES


def test_policy_modules_load_without_io() -> None:
    # Load every policy module without running anysoup/__init__ (which imports
    # everything) and list what ended up in sys.modules.
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('anysoup'); pkg.__path__ = [{str(PACKAGE)!r}]\n"
        "sys.modules['anysoup'] = pkg\n"
        "import importlib, json\n"
        "result = {}\n"
        f"for name in {POLICY_MODULES!r}:\n"
        "    before = set(sys.modules)\n"
        "    importlib.import_module(name)\n"
        "    result[name] = sorted(set(sys.modules) - before)\n"
        "print(json.dumps(result))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    import json

    loaded: dict[str, list[str]] = json.loads(out)
    for name, modules in loaded.items():
        io = [m for m in modules if m.split(".")[0] in NO_IO]
        assert not io, f"{name} loads {io}"
        above = [
            m
            for m in modules
            if m.startswith("anysoup.")
            and m.split(".")[1] in {"_session", "_pool", "_drivers", "_transport", "_cli"}
            and not m.endswith("_policy")
            and m.count(".") > 1
        ]
        assert not above, f"{name} loads {above}"


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("_model/headers.py", {"__future__", "re", "collections", "typing"}),
        ("_session/locale_policy.py", {"__future__", "re", "collections"}),
    ],
)
def test_leaf_policy_modules_import_only_what_they_need(module: str, allowed: set[str]) -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse((PACKAGE / module).read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
    assert imported <= allowed
