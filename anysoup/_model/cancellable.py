"""``Cancellable``: libsoup's ``GCancellable`` as a handle over cancel scopes.

Each call given the handle runs in a cancel scope registered with the event
loop that runs it. :meth:`Cancellable.cancel` cancels a scope directly when
called on that loop's thread, and through the loop's token
(``run_sync_soon``) from any other thread: cancel scopes are not
thread-safe, and the blocking facade's callers live in other threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import anyio
import anyio.lowlevel

from .exceptions import RequestCancelled

__all__ = ["Cancellable"]


class Cancellable:
    """A handle that cancels the calls it was passed to.

    Pass it as ``cancellable=`` to :meth:`anysoup.Session.send` and the other
    calls; :meth:`cancel` (from any task, or from any thread) cancels them,
    and they raise :class:`anysoup.RequestCancelled`. A call given an already
    cancelled handle raises at once. Cancel scopes of the caller work as
    usual; this class exists for code ported from libsoup and for cancelling
    from outside the calling task.
    """

    __slots__ = ("_cancelled", "_scopes")

    def __init__(self) -> None:
        self._cancelled = False
        # Each running call's scope, with its loop's thread and token.
        self._scopes: dict[anyio.CancelScope, tuple[int, anyio.lowlevel.EventLoopToken]] = {}

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
        here = threading.get_ident()
        for scope, (thread, token) in tuple(self._scopes.items()):
            if thread == here:
                scope.cancel()
            else:
                # A loop that has ended has ended the call with it.
                with suppress(anyio.RunFinishedError, RuntimeError):
                    token.backend_class.run_sync_soon(scope.cancel, (), token.native_token)

    def reset(self) -> None:
        """Make the handle usable again after :meth:`cancel`."""
        self._cancelled = False

    @contextmanager
    def _scope(self, what: str) -> Iterator[anyio.CancelScope]:
        """Run a block in a scope that :meth:`cancel` cancels; raise RequestCancelled."""
        if self._cancelled:
            raise RequestCancelled(f"{what}: cancelled before it started")
        with anyio.CancelScope() as scope:
            self._scopes[scope] = (threading.get_ident(), anyio.lowlevel.current_token())
            # cancel() from another thread may have set the flag between the
            # check above and the registration: it didn't see this scope.
            if self._cancelled:
                scope.cancel()
            try:
                yield scope
            finally:
                self._scopes.pop(scope, None)
        if scope.cancelled_caught:
            raise RequestCancelled(f"{what}: cancelled")

    def __repr__(self) -> str:
        state = "cancelled" if self._cancelled else "active"
        return f"<anysoup.Cancellable {state}, {len(self._scopes)} calls>"
