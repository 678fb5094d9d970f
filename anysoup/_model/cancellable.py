"""``Cancellable``: libsoup's ``GCancellable`` as a handle over cancel scopes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio

from .exceptions import RequestCancelled

__all__ = ["Cancellable"]


class Cancellable:
    """A handle that cancels the calls it was passed to.

    Pass it as ``cancellable=`` to :meth:`anysoup.Session.send` and the other
    calls; :meth:`cancel` (from any task of the same event loop) cancels them,
    and they raise :class:`anysoup.RequestCancelled`. A call given an already
    cancelled handle raises at once. Cancel scopes of the caller work as
    usual; this class exists for code ported from libsoup and for cancelling
    from outside the calling task.
    """

    __slots__ = ("_cancelled", "_scopes")

    def __init__(self) -> None:
        self._cancelled = False
        self._scopes: set[anyio.CancelScope] = set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled

    def is_cancelled(self) -> bool:
        """Alias of :attr:`cancelled` (libsoup's name)."""
        return self._cancelled

    def cancel(self) -> None:
        """Cancel every call running with this handle, and every later one."""
        self._cancelled = True
        for scope in tuple(self._scopes):
            scope.cancel()

    def reset(self) -> None:
        """Make the handle usable again after :meth:`cancel`."""
        self._cancelled = False

    @contextmanager
    def _scope(self, what: str) -> Iterator[anyio.CancelScope]:
        """Run a block in a scope that :meth:`cancel` cancels; raise RequestCancelled."""
        if self._cancelled:
            raise RequestCancelled(f"{what}: cancelled before it started")
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                yield scope
            finally:
                self._scopes.discard(scope)
        if scope.cancelled_caught:
            raise RequestCancelled(f"{what}: cancelled")

    def __repr__(self) -> str:
        state = "cancelled" if self._cancelled else "active"
        return f"<anysoup.Cancellable {state}, {len(self._scopes)} calls>"
