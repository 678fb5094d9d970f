"""``MockRouter``: a session feature that stands in for the network.

Theory of operation: the router is a :class:`~anysoup.SessionFeature` with
no stage of its own in the chain but one at the network edge
(``network_position = POSITION_TESTING``, inside every other stage, the
cache's included). There it takes the place of the core send coroutine:
for a request that a route matches it returns a mocked body stream without
calling on, so redirects, authentication, cookies, content decoding, the
sniffer, the cache and the Logger all run, unchanged, against the mocked
answers; each redirect hop or auth retry comes back through it. A route set
to pass through, or a host given to :meth:`MockRouter.pass_through`, calls
on to the real network.

A router may serve many sessions at once (it keeps no per-session state):
``router.install(session)`` or ``Session(features=[router])`` adds it to one;
while the router is active (``with router:``, or the pytest fixture) every
:class:`~anysoup.Session` made gets it too, so code under test that makes its
own sessions is mocked without being changed.

Strictness, by default: a request no route matches fails with
:class:`UnmatchedRequestError`, and at exit routes never called fail with
:class:`RoutesNotCalledError` (the names and switches are respx's:
``assert_all_mocked``, ``assert_all_called``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any
from weakref import WeakSet

import anyio.lowlevel

from .._features.feature import NEW_SESSION_HOOKS, CallNext, SessionFeature
from ._errors import RoutesNotCalledError, UnmatchedRequestError
from ._matching import UNSET, Matcher, Params, Request, URLPattern, ValuePattern
from ._response import Response, answer, read_request
from ._routes import Call, CallList, Route

if TYPE_CHECKING:
    from yarl import URL

    import anysoup

    from .._model.body import InputStream
    from .._model.message import Message

__all__ = ["MockRouter"]

#: The routers entered and not yet exited, innermost last.
_ACTIVE: list[MockRouter] = []


class MockRouter(SessionFeature):
    """Routes requests to mocked answers instead of the network.

    Args:
        assert_all_called: At exit, fail with :class:`RoutesNotCalledError`
            if a route (not ``optional``) was never called.
        assert_all_mocked: Fail a request no route matches with
            :class:`UnmatchedRequestError`; with False it gets an empty 200.
        base_url: Joined to relative route URLs: ``"https://api.example.org/v1"``
            and ``router.get("/users")`` match ``https://api.example.org/v1/users``.

    Example:
        >>> router = MockRouter()
        >>> route = router.get("https://example.org/", params={"q": "x"}).respond(text="hi")
    """

    network_position = SessionFeature.POSITION_TESTING
    _answers_locally = True  # its answers may wait (side effects): abort() must reach them

    def __init__(
        self,
        *,
        assert_all_called: bool = True,
        assert_all_mocked: bool = True,
        base_url: str | None = None,
    ) -> None:
        self._assert_all_called = assert_all_called
        self._assert_all_mocked = assert_all_mocked
        self._base_url = base_url
        self._routes: list[Route] = []
        self._passed_hosts: list[tuple[str, int | None]] = []
        self._unmatched: list[Request] = []
        self._sessions: WeakSet[anysoup.Session] = WeakSet()
        #: Every call the router received, matched or not, oldest first.
        self.calls = CallList()

    # -- routes ----------------------------------------------------------------------

    def route(
        self,
        method: str | None = None,
        url: URLPattern | None = None,
        *,
        url_prefix: str | URL | None = None,
        host: ValuePattern | None = None,
        path: ValuePattern | None = None,
        params: Params | None = None,
        headers: Mapping[str, ValuePattern] | None = None,
        json: Any = UNSET,
        content: bytes | None = None,
        optional: bool = False,
    ) -> Route:
        """Add a route; a request matches when it meets every criterion given.

        Routes are tried in the order they were added; the first match answers.

        Args:
            method: The method (any if None), case-insensitive.
            url: The exact URL (a query in it must be present in the request's),
                or a compiled pattern matched from the start of the URL.
            url_prefix: A string the URL starts with (instead of ``url``).
            host: The host, exact or a compiled pattern.
            path: The path, exact or a compiled pattern.
            params: Query parameters that must be present (a mapping, a value
                may be a list; or pairs).
            headers: Request headers that must be present, with their value
                (exact, or a compiled pattern).
            json: The request body, decoded as JSON, must equal this.
            content: The request body must be these bytes.
            optional: The route may go uncalled.

        Raises:
            TypeError, ValueError: A criterion is not valid.
        """
        matcher = Matcher(
            method=method,
            url=url,
            url_prefix=url_prefix,
            host=host,
            path=path,
            params=params,
            headers=headers,
            json=json,
            content=content,
            base_url=self._base_url,
        )
        route = Route(matcher, optional=optional)
        self._routes.append(route)
        return route

    def get(self, url: URLPattern | None = None, **criteria: Any) -> Route:
        """A ``GET`` route: :meth:`route` with the method given."""
        return self.route("GET", url, **criteria)

    def post(self, url: URLPattern | None = None, **criteria: Any) -> Route:
        """A ``POST`` route."""
        return self.route("POST", url, **criteria)

    def put(self, url: URLPattern | None = None, **criteria: Any) -> Route:
        """A ``PUT`` route."""
        return self.route("PUT", url, **criteria)

    def patch(self, url: URLPattern | None = None, **criteria: Any) -> Route:
        """A ``PATCH`` route."""
        return self.route("PATCH", url, **criteria)

    def delete(self, url: URLPattern | None = None, **criteria: Any) -> Route:
        """A ``DELETE`` route."""
        return self.route("DELETE", url, **criteria)

    def head(self, url: URLPattern | None = None, **criteria: Any) -> Route:
        """A ``HEAD`` route."""
        return self.route("HEAD", url, **criteria)

    def options(self, url: URLPattern | None = None, **criteria: Any) -> Route:
        """An ``OPTIONS`` route."""
        return self.route("OPTIONS", url, **criteria)

    def pass_through(self, *hosts: str) -> None:
        """Let requests to ``hosts`` that no route matches go to the network.

        A host is ``"name"`` (any port) or ``"name:port"``; ``"[::1]:8080"``
        for an IPv6 address with a port.

        Raises:
            ValueError: A host is empty or its port is not a number.
        """
        for host in hosts:
            self._passed_hosts.append(_host_port(host))

    @property
    def routes(self) -> list[Route]:
        """The routes, in the order they are tried."""
        return list(self._routes)

    def reset(self) -> None:
        """Forget every call received, and the unmatched requests (routes stay)."""
        self.calls.clear()
        self._unmatched.clear()
        for route in self._routes:
            route.reset()

    # -- checks ----------------------------------------------------------------------

    def assert_all_called(self) -> None:
        """Fail if a route (not ``optional``) was never called.

        Raises:
            RoutesNotCalledError: Listing the routes never called.
        """
        uncalled = [r for r in self._routes if not r.called and not r.optional]
        if uncalled:
            lines = "\n".join(f"  {route._matcher.describe()}" for route in uncalled)
            raise RoutesNotCalledError(
                f"{len(uncalled)} route(s) never called:\n{lines}\n"
                "Remove them, add them with optional=True, or use assert_all_called=False."
            )

    def _check_at_exit(self) -> None:
        """The checks of a clean exit: no unmatched request went unnoticed, every route called."""
        if self._unmatched and self._assert_all_mocked:
            lines = "\n".join(f"  {r.method} {r.url}" for r in self._unmatched)
            raise UnmatchedRequestError(
                f"{len(self._unmatched)} request(s) matched no route (each failed with "
                f"UnmatchedRequestError, which the code under test caught):\n{lines}"
            )
        if self._assert_all_called:
            self.assert_all_called()

    # -- installing ------------------------------------------------------------------

    def install(self, session: anysoup.Session) -> None:
        """Add the router to ``session`` (``session.add_feature(router)``).

        Raises:
            ValueError: The session already has a router.
        """
        session.add_feature(self)

    def uninstall(self, session: anysoup.Session) -> None:
        """Remove the router from ``session``: it goes to the network again."""
        session.remove_feature(self)

    def attach(self, session: anysoup.Session) -> None:
        """Called when the router is added to ``session``; it may serve many sessions."""
        self._sessions.add(session)

    def detach(self, session: anysoup.Session) -> None:
        """Called when the router is removed from ``session``."""
        self._sessions.discard(session)

    def __enter__(self) -> MockRouter:
        """Activate: every session made from now on until the exit gets the router."""
        if not _ACTIVE:
            NEW_SESSION_HOOKS.append(_install_active)
        _ACTIVE.append(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Deactivate; after a clean block, check that every route was called (unless off)."""
        self._deactivate()
        if exc_type is None:
            self._check_at_exit()

    async def __aenter__(self) -> MockRouter:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _deactivate(self) -> None:
        if self in _ACTIVE:
            # The latest entry of this router: nested "with" blocks unwind in order.
            del _ACTIVE[len(_ACTIVE) - 1 - _ACTIVE[::-1].index(self)]
        if not _ACTIVE and _install_active in NEW_SESSION_HOOKS:
            NEW_SESSION_HOOKS.remove(_install_active)

    # -- the network stage -----------------------------------------------------------

    async def handle_network(self, msg: Message, call_next: CallNext) -> InputStream:
        """Answer ``msg`` from the first route that matches it, or pass it on."""
        await anyio.lowlevel.checkpoint()  # sending is a checkpoint, as on the network
        request = await read_request(msg)
        call = Call(msg, request)
        route = next((r for r in self._routes if r._mismatch(request) is None), None)
        if route is None:
            self.calls.append(call)
            if self._passes(request):
                return await call_next(msg)
            if self._assert_all_mocked:
                self._unmatched.append(request)
                raise UnmatchedRequestError(self._unmatched_text(request))
            call.response = Response()
            return await answer(msg, call.response, request)
        route.calls.append(call)
        self.calls.append(call)
        if route._pass_through:
            return await call_next(msg)
        call.response = await route._respond(msg)
        return await answer(msg, call.response, request)

    def _passes(self, request: Request) -> bool:
        host = (request.url.host or "").lower()
        port = request.url.port
        return any(h == host and p in (None, port) for h, p in self._passed_hosts)

    def _unmatched_text(self, request: Request) -> str:
        lines = [f"no route matches {request.method} {request.url}"]
        if self._routes:
            lines.append(f"routes ({len(self._routes)}), in order:")
            for number, route in enumerate(self._routes, 1):
                why = route._mismatch(request)
                lines.append(f"  {number}. {route._matcher.describe()}: {why}")
        else:
            lines.append("the router has no routes")
        if self._passed_hosts:
            hosts = ", ".join(h if p is None else f"{h}:{p}" for h, p in self._passed_hosts)
            lines.append(f"passed through: {hosts}")
        lines.append(
            f"Add a route for it, or pass its host through "
            f"(router.pass_through({request.url.host!r}))."
        )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<anysoup.testing.MockRouter routes={len(self._routes)} calls={len(self.calls)}>"


def _host_port(host: str) -> tuple[str, int | None]:
    """``"name"``, ``"name:port"``, ``"::1"`` or ``"[::1]:port"`` as (name, port or None)."""
    text = host.strip()
    name, port, bad = text, "", False
    if text.startswith("["):
        name, bracket, rest = text[1:].partition("]")
        port = rest[1:]
        bad = not bracket or (rest != "" and (rest[0] != ":" or not port))
    elif text.count(":") == 1:  # more colons: a bare IPv6 address
        name, port = text.split(":")
        bad = not port
    if bad or not name or (port and not port.isdigit()):
        raise ValueError(f"pass_through: {host!r} is not a host or host:port")
    return name.lower(), int(port) if port else None


def _install_active(session: anysoup.Session) -> None:
    """The new-session hook: give ``session`` the innermost active router."""
    if _ACTIVE and not session.has_feature(MockRouter):
        session.add_feature(_ACTIVE[-1])
