"""Routes: what to match, what to answer, and the calls they received.

A :class:`Route` pairs a :class:`~anysoup.testing._matching.Matcher` with
an effect. The effect is a :class:`Response` (``respond``), a side effect
(``mock``) or the network itself (``pass_through``). A side effect is a
response, an exception (a class or an instance), a callable (sync or async)
given the :class:`~anysoup.Message` that returns a response (None: the
route's ``return_value``), or an iterable of those, one per call.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from .._model.exceptions import Error
from ._errors import MockError
from ._matching import Matcher, Request
from ._response import Response

if TYPE_CHECKING:
    from .._model.message import Message

__all__ = ["Call", "CallList", "Route", "SideEffect"]

#: One effect: what a side effect gives for one call.
Effect: TypeAlias = (
    Response
    | BaseException
    | type[BaseException]
    | Callable[["Message"], "Response | Awaitable[Response | None] | None"]
)
#: What ``Route.mock(side_effect=...)`` takes: an effect, or an iterable of them.
SideEffect: TypeAlias = Effect | Iterable[Effect]


@dataclass(eq=False)
class Call:
    """One request a route (or the router) received."""

    #: The message, which goes on changing (redirects, the response).
    message: Message
    #: The request as it reached the network, at the time of this call.
    request: Request
    #: The mocked answer given; None for a pass-through or a raised error.
    response: Response | None = None


class CallList(list[Call]):
    """The calls received, oldest first."""

    @property
    def last(self) -> Call:
        """The latest call.

        Raises:
            MockError: There was no call.
        """
        if not self:
            raise MockError("no call was received")
        return self[-1]


class Route:
    """A mocked endpoint: made by :meth:`MockRouter.route` and its shortcuts.

    By default it answers an empty 200. Configure it with :meth:`respond`,
    :meth:`mock` or :meth:`pass_through`; each returns the route.
    """

    def __init__(self, matcher: Matcher, *, optional: bool = False) -> None:
        self._matcher = matcher
        #: Whether the route may go uncalled (no :class:`RoutesNotCalledError`).
        self.optional = optional
        #: The calls this route answered.
        self.calls = CallList()
        #: The response given when there is no side effect (or it gives None).
        self.return_value: Response | None = None
        self._side_effect: SideEffect | None = None
        self._effects: Iterator[Effect] | None = None
        self._pass_through = False

    @property
    def called(self) -> bool:
        """Whether the route was called at least once."""
        return bool(self.calls)

    @property
    def call_count(self) -> int:
        """How many times the route was called."""
        return len(self.calls)

    @property
    def side_effect(self) -> SideEffect | None:
        """The side effect, which takes precedence over :attr:`return_value`."""
        return self._side_effect

    @side_effect.setter
    def side_effect(self, effect: SideEffect | None) -> None:
        self._effects = None
        if effect is not None and not _is_effect(effect):
            if not isinstance(effect, Iterable) or isinstance(effect, (str, bytes)):
                raise TypeError(
                    f"side_effect: {effect!r} is not a Response, an exception, "
                    "a callable or an iterable of those"
                )
            self._effects = iter(effect)
        self._side_effect = effect
        self._pass_through = False

    def respond(self, status: int = 200, **kwargs: Any) -> Route:
        """Answer with ``Response(status, **kwargs)`` (see :class:`Response`)."""
        return self.mock(return_value=Response(status, **kwargs))

    def mock(
        self, return_value: Response | None = None, *, side_effect: SideEffect | None = None
    ) -> Route:
        """Set the route's answer and side effect (as :class:`unittest.mock.Mock`)."""
        if return_value is not None and not isinstance(return_value, Response):
            raise TypeError(f"return_value: {return_value!r} is not a Response")
        self.return_value = return_value
        self.side_effect = side_effect
        return self

    def pass_through(self) -> Route:
        """Send matching requests to the network (still recorded in :attr:`calls`)."""
        self.mock()
        self._pass_through = True
        return self

    def reset(self) -> None:
        """Forget the calls received."""
        self.calls.clear()

    def _mismatch(self, request: Request) -> str | None:
        return self._matcher.mismatch(request)

    async def _respond(self, msg: Message) -> Response:
        """The response for this call, or raise the side effect's exception."""
        effect = self._side_effect
        if self._effects is not None:
            try:
                effect = next(self._effects)
            except StopIteration:
                raise MockError(
                    f"route {self._matcher.describe()}: its side effects ran out "
                    f"after {self.call_count - 1} calls"
                ) from None
        if effect is None:
            return self.return_value or Response()
        if isinstance(effect, Response):
            return effect
        if isinstance(effect, BaseException) or (
            isinstance(effect, type) and issubclass(effect, BaseException)
        ):
            raise _exception(effect, msg)
        if callable(effect):
            result: object = cast("Callable[[Message], object]", effect)(msg)
            if inspect.isawaitable(result):
                result = await result
            if result is None:
                return self.return_value or Response()
            if isinstance(result, Response):
                return result
            raise TypeError(f"side_effect {effect!r} returned {result!r}, not a Response or None")
        raise TypeError(f"side_effect: {effect!r} is not a Response, an exception or a callable")

    def __repr__(self) -> str:
        return f"<anysoup.testing.Route {self._matcher.describe()} calls={self.call_count}>"


def _is_effect(effect: object) -> bool:
    """Whether ``effect`` is one effect (not an iterable of them)."""
    return (
        isinstance(effect, (Response, BaseException))
        or (isinstance(effect, type) and issubclass(effect, BaseException))
        or callable(effect)
    )


def _exception(effect: BaseException | type[BaseException], msg: Message) -> BaseException:
    """The exception a side effect raises: an instance as it is, a class made for ``msg``."""
    if isinstance(effect, type):
        text = f"mocked {effect.__name__}: {msg.method} {msg.uri}"
        try:
            exc = effect(text, message=msg) if issubclass(effect, Error) else effect(text)
        except TypeError:
            raise TypeError(
                f"side_effect: {effect.__name__}(text) can't be made; give an instance"
            ) from None
    else:
        exc = effect
    if isinstance(exc, Error) and exc.message is None:
        exc.message = msg
    return exc
