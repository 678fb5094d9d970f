"""A scripted HTTP/2 server and an anysoup session trusting it, for the HTTP/2 tests."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from h2_servers import H2Server, serve_h2

from anysoup import Session, TlsDatabase

#: Seconds any one test's exchanges may take together.
BOUND = 10


@asynccontextmanager
async def h2(
    handler: Any, context: ssl.SSLContext, database: TlsDatabase, **options: Any
) -> AsyncIterator[tuple[H2Server, Session]]:
    """``serve_h2(handler, context, **options)`` and a session trusting ``database``.

    ``session={...}`` in ``options`` gives the session's keywords.
    """
    session_options = options.pop("session", {})
    async with (
        serve_h2(handler, context, **options) as server,
        Session(tls_database=database, **session_options) as session,
    ):
        with anyio.fail_after(BOUND):
            yield server, session
