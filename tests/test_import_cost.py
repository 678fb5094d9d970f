"""What ``import anysoup`` loads: what a plain HTTP/1.1 request needs, nothing more.

The rest loads on first use (issue 19, item 6): WebSocket (wsproto, the
driver, permessage-deflate), HTTP/2 (h2), the cache and its disk storage
(sqlite3), cookies and the public suffix list, HSTS, the logger, retries,
the sniffer, NTLM (pyspnego), SOCKS (python-socks), compression
dictionaries, multipart bodies, the command and the test helpers. Each
check runs in a fresh interpreter, since this one has loaded everything
long ago. How fast the import is belongs to the benchmarks: nothing here
is timed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from servers import ReceivedRequest, ServerConnection, serve_http

import anysoup

#: Modules (and packages, with everything under them) that neither ``import
#: anysoup`` nor a plain HTTP/1.1 GET may load.
DEFERRED = (
    # third-party libraries of features a plain request doesn't use
    "wsproto",
    "h2",
    "hpack",
    "hyperframe",
    "python_socks",
    "socks",
    "spnego",
    "publicsuffixlist",
    "cryptography",
    "brotli",
    "zstandard",
    # the standard library's heavier modules, for the same reason
    "sqlite3",
    "json",
    "secrets",
    # anysoup's own: WebSocket, HTTP/2, the optional features...
    "anysoup._drivers.websocket",
    "anysoup._drivers.websocket_core",
    "anysoup._drivers.websocket_handshake_policy",
    "anysoup._drivers.http2",
    "anysoup._drivers.http2_client",
    "anysoup._drivers.http2_policy",
    "anysoup._drivers.http2_stream",
    "anysoup._session.exchange_h2",
    "anysoup._session.websocket_connect",
    "anysoup._model.websocket_extension",
    "anysoup._features.websocket.deflate_policy",
    "anysoup._features.auth.challenge_policy",
    "anysoup._features.auth.ntlm_policy",
    "anysoup._features.cache",
    "anysoup._features.cookies",
    "anysoup._features.hsts",
    "anysoup._features.logger",
    "anysoup._features.retry",
    "anysoup._features.sniffer",
    "anysoup._features.decoder.dictionaries",
    "anysoup._features.decoder.dictionary_codings_policy",
    "anysoup._model.compression_dictionary",
    "anysoup._model.multipart",
    "anysoup._model.multipart_parse",
    "anysoup._model.multipart_stream",
    "anysoup._model.tld",
    # ...the command, the blocking calls and the test helpers
    "anysoup._cli",
    "anysoup._blocking",
    "anysoup.blocking",
    "anysoup.testing",
)

#: Prints every loaded module, one a line, after the code before it.
_PRINT_MODULES = "\nprint('\\n'.join(sorted(sys.modules)))\n"


def _deferred_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == d or m.startswith(d + ".") for d in DEFERRED))


def _loaded_after(code: str, *args: str) -> set[str]:
    """The modules loaded in a fresh interpreter after ``code`` ran."""
    result = subprocess.run(
        [sys.executable, "-c", code + _PRINT_MODULES, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_import_anysoup_loads_none_of_the_deferred_modules() -> None:
    loaded = _loaded_after("import sys, anysoup")
    assert _deferred_in(loaded) == []
    assert "anyio.streams.tls" not in loaded  # the first connection loads it (and logging)
    # What a plain request needs is there: the check above would pass on an
    # import that failed half-way.
    assert {"anysoup._session.session", "anysoup._drivers.http1", "h11", "anyio"} <= loaded


def test_the_lists_are_checked() -> None:
    # Every deferred anysoup module exists: a typo here would check nothing.
    package = Path(anysoup.__file__).parent
    for name in DEFERRED:
        if name.startswith("anysoup."):
            path = package.joinpath(*name.split(".")[1:])
            assert path.with_suffix(".py").exists() or path.is_dir(), name
    # ...and a deferred module shows up once used: the check can see it load.
    code = "import sys, anysoup\nfor name in anysoup.__all__:\n    getattr(anysoup, name)\n"
    loaded = _loaded_after(code)
    assert "wsproto" in loaded and "anysoup._features.cache.cache" in loaded


_GET = """
import sys

import anyio

import anysoup


async def main() -> None:
    async with anysoup.Session() as session:
        msg = await session.get(sys.argv[1])
        assert (msg.status, msg.text) == (200, "plain"), (msg.status, msg.text)
        # The WebSocket extension manager (a default feature) is asked too,
        # and answers without making its default offer (permessage-deflate).
        session.remove_feature_by_type(anysoup.AuthDigest)
        assert not session.has_feature(anysoup.AuthDigest)
        assert session.has_feature(anysoup.WebsocketExtensionManager)


anyio.run(main, backend=sys.argv[2])
"""


async def test_a_plain_get_loads_none_of_the_deferred_modules(anyio_backend: str) -> None:
    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.respond(200, [("Content-Type", "text/plain")], b"plain")

    async with serve_http(handler) as server:
        url = server.url_for("/")
        with anyio.fail_after(60):
            result = await anyio.run_process(
                [sys.executable, "-c", _GET + _PRINT_MODULES, url, anyio_backend], check=False
            )
    assert result.returncode == 0, result.stderr.decode()
    assert len(server.requests) == 1
    loaded = set(result.stdout.decode().split())
    assert _deferred_in(loaded) == []
    assert anyio_backend in loaded


def test_features_kept_in_memory_leave_sqlite3_alone() -> None:
    # sqlite3 is for a cache, a cookie jar or an HSTS store on disk.
    code = "import sys, anysoup\nanysoup.Cache(), anysoup.CookieJar(), anysoup.HSTSEnforcer()\n"
    loaded = _loaded_after(code)
    assert {"anysoup._features.cache.cache", "anysoup._features.hsts.enforcer"} <= loaded
    on_disk = ("sqlite3", "anysoup._features.cache.disk_", "anysoup._features.cookies.stores")
    assert not [m for m in loaded if m.startswith(on_disk)]


def test_every_public_name_is_there_and_named_anysoup() -> None:
    # Loaded on first use or not, every name of __all__ is an attribute, is
    # listed by dir(), and a class calls itself anysoup.<name>.
    assert set(anysoup.__all__) <= set(dir(anysoup))
    for name in anysoup.__all__:
        obj = getattr(anysoup, name)
        if isinstance(obj, type):
            assert (obj.__module__, obj.__qualname__) == ("anysoup", name)
    from anysoup import Cache, WebsocketConnection  # from-imports go through __getattr__ too

    assert Cache is anysoup.Cache and WebsocketConnection is anysoup.WebsocketConnection


def test_a_deferred_class_is_named_anysoup_before_the_package_hands_it_out() -> None:
    # The session imports the WebSocket connection, the manager imports
    # permessage-deflate: a class may load without anysoup.<name> being
    # asked for, so each deferred class names its module itself (@public).
    code = (
        "import importlib, sys, anysoup\n"
        "for name, module in anysoup._LAZY.items():\n"
        "    obj = getattr(importlib.import_module(module, 'anysoup'), name)\n"
        "    assert name not in vars(anysoup), name  # not handed out by __getattr__\n"
        "    if isinstance(obj, type):\n"
        "        assert obj.__module__ == 'anysoup', (name, obj.__module__)\n"
    )
    _loaded_after(code)


def test_the_deferred_names_are_listed_alike_everywhere() -> None:
    # _LAZY, the TYPE_CHECKING imports (for mypy and the docs) and __all__ agree.
    tree = ast.parse(Path(anysoup.__file__).read_text())
    type_only: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                assert isinstance(sub, ast.ImportFrom)
                for alias in sub.names:
                    assert alias.asname == alias.name
                    type_only[alias.name] = "." * sub.level + (sub.module or "")
    assert type_only == anysoup._LAZY
    assert set(anysoup._LAZY) <= set(anysoup.__all__)


def test_a_missing_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        anysoup.NoSuchThing  # noqa: B018
