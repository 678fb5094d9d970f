"""``SessionFeature``: the base of everything that plugs into a session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from .._model.body import InputStream
    from .._model.message import Message
    from .._session.session import Session

__all__ = ["NEW_SESSION_HOOKS", "CallNext", "SessionFeature"]

#: The rest of the chain, as seen by a feature: send a message, get its body.
CallNext = Callable[["Message"], Awaitable["InputStream"]]

#: Called with every new session once its features are in place. This is how
#: an active :class:`anysoup.testing.MockRouter` gets into the sessions that
#: the code under test makes for itself; empty outside tests.
NEW_SESSION_HOOKS: list[Callable[[Session], None]] = []


class SessionFeature:
    """A session feature (libsoup's ``SoupSessionFeature``).

    A feature that takes part in sending overrides :meth:`handle` and sets
    :attr:`chain_position`; the session orders stages by that number, outer
    (small) to inner (large), whatever order features were added in. The
    positions of the built-in features are the class constants below (the
    redirect stage is the session's own and always outermost).

    A feature may also accept *sub-features*: types offered by
    :meth:`anysoup.Session.add_feature_by_type` that are not features
    themselves (an auth scheme is a sub-feature of the auth manager).
    """

    #: Built-in positions, outer to inner (DESIGN §1).
    POSITION_HSTS: ClassVar[int] = 100
    POSITION_RETRY: ClassVar[int] = 150
    POSITION_CACHE: ClassVar[int] = 200
    POSITION_SNIFFER: ClassVar[int] = 300
    POSITION_DECODER: ClassVar[int] = 400
    POSITION_AUTH: ClassVar[int] = 500
    POSITION_COOKIES: ClassVar[int] = 600
    POSITION_LOGGER: ClassVar[int] = 700

    #: Positions at the network edge, inside every feature stage: the
    #: cache's lookup and store, then a test router standing in for the network.
    POSITION_CACHE_NETWORK: ClassVar[int] = 800
    POSITION_TESTING: ClassVar[int] = 900

    #: Whether the feature may answer a message itself, waiting where the
    #: pool can't see (a test router): ``Session.abort()`` must then reach
    #: whole calls, which costs a cancel scope per call.
    _answers_locally: ClassVar[bool] = False

    #: Where :meth:`handle` runs in the chain; None if the feature doesn't handle messages.
    chain_position: ClassVar[int | None] = None
    #: Where :meth:`handle_network` runs, for a feature that also needs a stage
    #: at the network edge (it sees the request exactly as sent, after auth and
    #: cookies, and the response before any decoding); None if it has none.
    network_position: ClassVar[int | None] = None

    _session: Session | None = None

    @property
    def session(self) -> Session | None:
        """The session this feature is attached to."""
        return self._session

    def attach(self, session: Session) -> None:
        """Called when the feature is added to ``session``.

        Raises:
            ValueError: The feature already belongs to another session.
        """
        if self._session is not None and self._session is not session:
            raise ValueError(f"{self!r} already belongs to another session")
        self._session = session

    def detach(self, session: Session) -> None:
        """Called when the feature is removed from ``session``."""
        if self._session is session:
            self._session = None

    async def session_closed(self, session: Session) -> None:
        """Called when ``session`` closes (its connections are gone).

        A feature that writes files finishes its writes here, so they are
        complete when ``async with Session()`` ends. The default does nothing.
        """

    def add_sub_feature(self, feature_type: type) -> bool:
        """Accept a sub-feature type; return whether it was taken."""
        return False

    def remove_sub_feature(self, feature_type: type) -> bool:
        """Drop a sub-feature type; return whether it was there."""
        return False

    def has_sub_feature(self, feature_type: type) -> bool:
        """Whether ``feature_type`` was accepted as a sub-feature."""
        return False

    async def handle(self, msg: Message, call_next: CallNext) -> InputStream:
        """Send ``msg`` through this stage: by default, pass it on unchanged."""
        return await call_next(msg)

    async def handle_network(self, msg: Message, call_next: CallNext) -> InputStream:
        """The stage at :attr:`network_position`: by default, pass it on unchanged.

        A message that disabled the feature skips this stage too.
        """
        return await call_next(msg)

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__}>"
