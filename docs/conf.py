"""Sphinx configuration for the anysoup documentation."""

from __future__ import annotations

import anysoup

project = "anysoup"
author = "the anysoup developers"
copyright = "2026, the anysoup developers"
release = anysoup.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
nitpicky = True
nitpick_ignore_regex = [
    (r"py:class", r"anyio\..*"),
    (r"py:class", r"yarl\..*|URL"),
    (r"py:class", r"h11\..*"),
    (r"py:class", r"(ssl\.)?SSLContext"),
    (r"py:class", r"(datetime|ipaddress)\..*"),
    (r"py:class", r"anysoup\._.*"),
    (r"py:class", r"TaskStatus.*|ByteSendStream|_Writable|TracebackType|Hashable"),
    (r"py:class", r"RemoteAddress|RequestBodySource|CallNext|Signal|SignalDescriptor.*"),
    # The request helpers' argument types (anysoup/_model/request_args.py).
    (r"py:class", r"Params|Headers|Data|Content"),
    (r"py:class", r"Message|InputStream|Session|MessageMetrics|PoolStatistics"),
    (r"py:class", r"anysoup\.(Message|Session|InputStream|SignalDescriptor)"),
    (r"py:obj", r"anysoup\..*"),
    (r"py:data", r".*DEFAULT"),
    (r"py:(attr|meth|exc)", r"[a-z_][a-z0-9_]*|anyio\..*|Pool\..*"),
    (r"py:class", r"BodySource"),
    # anysoup.blocking's annotations: the loop thread, the async WebSocket, buffers.
    (r"py:class", r"LoopThread|AsyncWebsocketConnection|AsyncSession|WriteableBuffer|IO\[bytes\]"),
    # The standard library: no intersphinx, since the docs build offline.
    (r"py:(class|exc|func|obj|mod)", r"(builtins\.)?[a-z_]+|[A-Z][A-Za-z]*(Error|Warning)"),
    (r"py:(class|func|obj|mod)", r"(time|ssl|os|enum|collections|typing|re|unittest)\..*"),
    # anysoup.testing's type aliases for route criteria, bodies and side effects.
    (r"py:class", r"URLPattern|ValuePattern|Params|Content|SideEffect|Matcher"),
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = "anysoup"
exclude_patterns = ["_build"]
