"""The layering rule of STYLE.md: policy modules do no I/O.

Policy modules (headers, locale, URIs, pool bookkeeping) import neither an
async library nor a driver, so they can be read and tested as plain code.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import anysoup
from anysoup import (
    _auth,
    _auth_challenge,
    _auth_digest,
    _auth_ntlm,
    _codings,
    _cookie,
    _cookie_parse,
    _headers,
    _hsts_policy,
    _locale,
    _log_lines,
    _multipart,
    _no_proxy,
    _pool_state,
    _proxy_resolver,
    _sniff_tables,
    _sniffer,
    _uri,
    _websocket_extensions,
    _websocket_handshake,
)

# -- policy modules do no I/O ----------------------------------------------------

_POLICY_MODULES = [
    _auth,
    _auth_challenge,
    _auth_digest,
    _auth_ntlm,
    _pool_state,
    _no_proxy,
    _proxy_resolver,
    _headers,
    _hsts_policy,
    _locale,
    _uri,
    _codings,
    _cookie,
    _cookie_parse,
    _log_lines,
    _multipart,
    _sniffer,
    _sniff_tables,
    _websocket_extensions,
    _websocket_handshake,
]
_ASYNC_LIBRARIES = {"anyio", "trio", "sniffio", "h11", "asyncio"}
_FORBIDDEN_TOP = _ASYNC_LIBRARIES | {"socket", "ssl", "select"}
_DRIVERS = {
    "_http1",
    "_websocket",
    "_connect",
    "_proxy_connect",
    "_pool",
    "_tls",
    "_session",
    "_core",
    "_body",
}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (not run at import)."""
    nodes: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def _imports(source: str) -> tuple[set[str], set[str]]:
    """Top-level absolute imports and intra-package (relative) module names."""
    absolute: set[str] = set()
    relative: set[str] = set()
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            absolute.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.module:
                    relative.add(node.module.split(".")[0])
                else:
                    relative.update(alias.name for alias in node.names)
            elif node.module:
                if node.module == "anysoup" or node.module.startswith("anysoup."):
                    relative.add(node.module.split(".")[1] if "." in node.module else "__init__")
                else:
                    absolute.add(node.module.split(".")[0])
    return absolute, relative


@pytest.mark.parametrize("module", _POLICY_MODULES, ids=lambda m: m.__name__)
def test_policy_module_imports_neither_anyio_nor_a_driver(module: Any) -> None:
    # The module's own imports, and those of the package modules it pulls in.
    package = Path(anysoup.__file__).parent
    seen: set[str] = set()
    todo = [Path(module.__file__).stem]
    absolute_all: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        absolute, relative = _imports((package / f"{name}.py").read_text())
        absolute_all |= absolute
        todo.extend(relative)
    assert not absolute_all & _FORBIDDEN_TOP, absolute_all
    assert not seen & (_DRIVERS | {"__init__"}), seen


def test_policy_modules_load_without_async_libraries() -> None:
    # Load the modules without running anysoup/__init__ (which imports everything)
    # and list what ended up in sys.modules.
    package = Path(anysoup.__file__).parent
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('anysoup'); pkg.__path__ = [{str(package)!r}]\n"
        "sys.modules['anysoup'] = pkg\n"
        "import anysoup._pool_state, anysoup._headers, anysoup._locale, anysoup._uri\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{sorted(_ASYNC_LIBRARIES)!r} or m.startswith('anysoup.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    loaded = ast.literal_eval(out.strip())
    assert not [m for m in loaded if m.split(".")[0] in _ASYNC_LIBRARIES], loaded
    assert not [m for m in loaded if m.split(".")[-1] in _DRIVERS], loaded
    assert "anysoup._pool_state" in loaded


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        (_headers, {"__future__", "re", "collections", "typing"}),
        (_locale, {"__future__", "re", "collections"}),
    ],
    ids=["_headers", "_locale"],
)
def test_leaf_policy_modules_import_only_what_they_need(module: Any, allowed: set[str]) -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= allowed
