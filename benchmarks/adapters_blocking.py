"""The clients that only have blocking calls: requests and urllib3 (``sync_get`` only).

They run in the ``blocking_*`` scenarios beside ``anysoup.blocking`` and
``httpx.Client`` (adapters.py). The backend only says which event loop the
worker idles in while its threads work: it changes nothing for these, and
they run on both so that every row has a same-backend baseline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from adapters import BOTH, Client, Lazy, Setup, _expect, adapter, tls_context


@adapter("requests", backends=BOTH, ops=frozenset({"sync_get"}), dists=("requests", "urllib3"))
async def requests_client(setup: Setup) -> AsyncIterator[Client]:
    """requests.Session with an HTTPAdapter(pool_maxsize=limit), no env."""
    import requests
    import requests.adapters

    def make() -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        if setup.ca_file:
            session.verify = setup.ca_file
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=setup.limit))
        session.mount("https://", requests.adapters.HTTPAdapter(pool_maxsize=setup.limit))
        return session

    blocking = Lazy(make)

    def sync_get(url: str) -> int:
        response = blocking.get().get(url)
        _expect(response.status_code, url)
        return len(response.content)

    try:
        yield Client(protocols={"1.1"}, sync_get=sync_get)
    finally:
        await blocking.aclose()


@adapter("urllib3", backends=BOTH, ops=frozenset({"sync_get"}), dists=("urllib3",))
async def urllib3_client(setup: Setup) -> AsyncIterator[Client]:
    """urllib3.PoolManager(maxsize=limit), the body preloaded."""
    import urllib3

    def make() -> urllib3.PoolManager:
        options = {"ssl_context": tls_context(setup)} if setup.ca_file else {}
        return urllib3.PoolManager(maxsize=setup.limit, retries=False, **options)

    blocking = Lazy(make)

    def sync_get(url: str) -> int:
        response = blocking.get().request("GET", url)
        _expect(response.status, url)
        return len(response.data)

    try:
        yield Client(protocols={"1.1"}, sync_get=sync_get)
    finally:
        await blocking.aclose()
