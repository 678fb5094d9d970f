"""Signals: libsoup's GObject signals as plain Python objects.

A handler receives the emitting object first, then the signal's arguments, as
in PyGObject. Handlers may be plain functions or coroutine functions; the
emitter awaits coroutine handlers before it goes on. For signals with a
boolean result (``authenticate``, ``accept_certificate``) the first handler
that returns True stops the emission; for one that asks for a value
(``request_compression_dictionary``) the first that returns one does.

Emission is on the per-request hot path, so a signal with no handler costs one
attribute test: emitters check :attr:`Signal.handlers` before calling
:meth:`Signal.emit`.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

__all__ = ["Signal", "SignalDescriptor"]

_ids = itertools.count(1)

Handler = Callable[..., Any]


class Signal:
    """A list of handlers bound to one emitting object.

    Args:
        owner: The object passed as the first argument to every handler.
        name: The signal's name, for ``repr()``.
    """

    __slots__ = ("__weakref__", "_owner", "handlers", "name")

    def __init__(self, owner: object, name: str) -> None:
        self._owner = owner
        self.name = name
        #: ``(id, handler)`` pairs, in connection order.
        self.handlers: list[tuple[int, Handler]] = []

    def connect(self, handler: Handler) -> int:
        """Add a handler and return an id for :meth:`disconnect`."""
        if not callable(handler):
            raise TypeError(f"signal {self.name!r}: handler must be callable, not {handler!r}")
        handler_id = next(_ids)
        self.handlers.append((handler_id, handler))
        return handler_id

    def disconnect(self, handler_id: int) -> None:
        """Remove the handler that :meth:`connect` returned ``handler_id`` for.

        Raises:
            ValueError: No handler of this signal has that id.
        """
        for index, (known, _) in enumerate(self.handlers):
            if known == handler_id:
                del self.handlers[index]
                return
        raise ValueError(f"signal {self.name!r} has no handler with id {handler_id}")

    async def emit(self, *args: Any) -> None:
        """Call every handler with the owner and ``args``; await coroutine results."""
        for _, handler in tuple(self.handlers):
            result = handler(self._owner, *args)
            if inspect.isawaitable(result):
                await result

    async def emit_until_true(self, *args: Any) -> bool:
        """Call handlers in order until one returns True; return whether one did."""
        for _, handler in tuple(self.handlers):
            result = handler(self._owner, *args)
            if inspect.isawaitable(result):
                result = await result
            if result is True:
                return True
        return False

    async def emit_until_value(self, *args: Any) -> Any:
        """Call handlers in order until one returns something other than None; return it.

        Returns None when every handler did (or there is none).
        """
        for _, handler in tuple(self.handlers):
            result = handler(self._owner, *args)
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                return result
        return None

    def emit_sync(self, *args: Any) -> None:
        """Call the plain-function handlers only.

        Used where awaiting is impossible (a stream collected by the garbage
        collector); coroutine handlers are skipped and their coroutines closed.
        """
        for _, handler in tuple(self.handlers):
            result = handler(self._owner, *args)
            if inspect.iscoroutine(result):
                result.close()

    def __repr__(self) -> str:
        owner = type(self._owner).__name__
        return f"<Signal {self.name!r} of {owner}, {len(self.handlers)} handlers>"


_Owner = TypeVar("_Owner")


class SignalDescriptor(Generic[_Owner]):
    """A class attribute that gives each instance its own :class:`Signal`, made on first use.

    The instance must have a ``_signals`` attribute holding a dict or None.
    """

    def __init__(self, doc: str = "") -> None:
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner: type[_Owner], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type[_Owner]) -> SignalDescriptor[_Owner]: ...

    @overload
    def __get__(self, instance: _Owner, owner: type[_Owner]) -> Signal: ...

    def __get__(
        self, instance: _Owner | None, owner: type[_Owner]
    ) -> Signal | SignalDescriptor[_Owner]:
        if instance is None:
            return self
        signals: dict[str, Signal] | None = instance._signals  # type: ignore[attr-defined]
        if signals is None:
            signals = instance._signals = {}  # type: ignore[attr-defined]
        signal = signals.get(self.name)
        if signal is None:
            signal = signals[self.name] = Signal(instance, self.name)
        return signal


def active(owner: Any, name: str) -> Signal | None:
    """Return the signal ``name`` of ``owner`` if it has handlers, else None.

    This is the emitters' fast test: no Signal object is made for a signal
    nobody connected to.
    """
    signals: dict[str, Signal] | None = owner._signals
    if signals is None:
        return None
    signal = signals.get(name)
    if signal is None or not signal.handlers:
        return None
    return signal
