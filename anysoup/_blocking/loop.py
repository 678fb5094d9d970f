"""The event loop thread behind :class:`anysoup.blocking.Session`.

Theory of operation
-------------------

A :class:`LoopThread` runs one event loop (asyncio or trio, through
``anyio.run``) in a daemon thread. The loop holds a resource (the async
session) open and, inside it, a task group for the calls other threads make.
A call goes to the loop in one hop: the calling thread schedules a callback
with the loop's token (``run_sync_soon``, anyio's thread-safe "call soon"),
the callback queues the call for a worker task, and the outcome goes back
through a :class:`concurrent.futures.Future` the caller waits on. So a call
costs two thread wake-ups, the least a thread hop can cost (anyio's
``BlockingPortal.start_task_soon`` waits for the task to start first, a
second round trip). Worker tasks wait for calls in the calls' task group,
each call in a cancel scope of its own; one is started only when every
worker is busy, because starting a task costs more than the rest of the
hop. A plain function (a setting, the statistics) runs in the callback
itself.

A signal (Ctrl-C) interrupts the caller's wait on POSIX; on Windows the
caller waits in slices of :data:`POLL` seconds so that it lands all the
same. Calls that may be left behind when the loop ends (queued in the very
moment it stops) are failed when it has ended: no caller waits forever.
When the wait is interrupted, the call's task is cancelled and the caller
waits (a bounded time) for it to end, so the pool's bookkeeping and any
body stream are settled before ``KeyboardInterrupt`` goes on.

Stopping cancels the calls still running (they raise
:class:`anysoup.RequestCancelled`), closes the resource, and ends the loop;
the thread is a daemon, so a loop never stopped doesn't keep the process
alive, and an ``atexit`` hook stops the loops still running (bounded) so
persistent features get to write their files.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import math
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._model.exceptions import RequestCancelled

__all__ = ["POLL", "LoopThread", "check_not_async"]

T = TypeVar("T")

#: How long the calling thread waits before looking again, where a signal
#: can't interrupt a lock wait (Windows). On POSIX it does, and a wait with
#: no timeout is cheaper.
POLL = 0.5 if sys.platform == "win32" else None
#: How long an interrupted call may take to finish cancelling.
CANCEL_GRACE = 5.0
#: How long the atexit hook waits for all loops still running to stop.
EXIT_GRACE = 2.0

_running: weakref.WeakSet[LoopThread] = weakref.WeakSet()

_OWN_THREAD = (
    "a blocking anysoup call from the session's own event loop thread (a signal "
    "handler?) would wait for itself; handlers get the async session: await its "
    "methods there"
)


def check_not_async(what: str) -> None:
    """Refuse a blocking call from inside a running event loop (it would block it).

    Raises:
        RuntimeError: The calling thread runs an asyncio or trio event loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            f"{what}: a blocking call inside a running asyncio event loop would block it; "
            "use anysoup.Session and await it, or run this call in a worker thread "
            "(anyio.to_thread.run_sync)"
        )
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_run():
        raise RuntimeError(
            f"{what}: a blocking call inside a running trio event loop would block it; "
            "use anysoup.Session and await it, or run this call in a worker thread "
            "(trio.to_thread.run_sync)"
        )


class _Job:
    """One call waiting for, or running in, the loop."""

    __slots__ = ("args", "func", "future", "interrupted", "scope")

    def __init__(self, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        self.func = func
        self.args = args
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.scope: anyio.CancelScope | None = None
        self.interrupted = False

    def interrupt(self) -> None:
        """Cancel the task (run on the loop thread)."""
        self.interrupted = True
        if self.scope is not None:
            self.scope.cancel()


class LoopThread:
    """An event loop in a daemon thread, holding ``resource`` open, running calls.

    Args:
        backend: ``"asyncio"`` or ``"trio"``.
        resource: Entered on the loop when it starts, left when it stops.
        name: The thread's name.

    Raises:
        Exception: Starting the loop or entering ``resource`` failed.
    """

    def __init__(
        self, backend: str, resource: AbstractAsyncContextManager[Any], name: str
    ) -> None:
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._calls: TaskGroup | None = None
        self._jobs: MemoryObjectSendStream[_Job] | None = None
        self._receive: MemoryObjectReceiveStream[_Job]
        # Worker tasks waiting for a call, and not yet promised to one.
        self._idle = 0
        # The futures callers wait on, failed if the loop ends without them.
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._ended = False
        self._stop: anyio.Event | None = None
        self._stopping = False
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._main, args=(backend, resource), name=name, daemon=True
        )
        self._thread.start()
        self._started.result()
        self.ident = self._thread.ident
        _running.add(self)

    # -- the loop thread -------------------------------------------------------------

    def _main(self, backend: str, resource: AbstractAsyncContextManager[Any]) -> None:
        try:
            anyio.run(self._run, resource, backend=backend)
        except BaseException as exc:
            if not self._started.done():
                self._started.set_exception(exc)
            # After a start, closing the resource failed: nobody is left to
            # tell but the thread's excepthook.
            else:
                raise
        finally:
            self._calls = self._jobs = None
            self._ended = True
            for future in list(self._pending):
                if not future.done():
                    future.set_exception(RuntimeError("the blocking session is closed"))

    async def _run(self, resource: AbstractAsyncContextManager[Any]) -> None:
        self._token = anyio.lowlevel.current_token()
        self._stop = anyio.Event()
        send, receive = anyio.create_memory_object_stream[_Job](math.inf)
        self._receive = receive
        with send, receive:
            async with resource, anyio.create_task_group() as calls:
                self._calls, self._jobs = calls, send
                self._started.set_result(None)
                await self._stop.wait()
                self._calls = self._jobs = None
                calls.cancel_scope.cancel()
            # Calls queued behind the cancelled ones never started.
            while True:
                try:
                    job = receive.receive_nowait()
                except anyio.WouldBlock:
                    break
                job.future.set_exception(RequestCancelled("the blocking session was closed"))

    def _start(self, job: _Job) -> None:
        """Queue ``job`` for a waiting worker task, or start one (on the loop thread)."""
        calls, jobs = self._calls, self._jobs
        if calls is None or jobs is None:
            job.future.set_exception(RuntimeError("the blocking session is closed"))
            return
        jobs.send_nowait(job)
        # Each queued job has a worker promised to it: an idle one, or a new one.
        if self._idle:
            self._idle -= 1
        else:
            calls.start_soon(self._worker, name="anysoup blocking call")

    async def _worker(self) -> None:
        """Run calls one after another; wait for the next between them.

        Workers outlive their calls because starting a task costs more than
        the rest of a short call's hop: the session keeps as many as calls
        ever ran at once.
        """
        receive = self._receive
        while True:
            await self._run_job(await receive.receive())
            self._idle += 1

    async def _run_job(self, job: _Job) -> None:
        future = job.future
        try:
            with anyio.CancelScope() as scope:
                job.scope = scope
                if job.interrupted:
                    scope.cancel()
                result = await job.func(*job.args)
                future.set_result(result)
                return
            future.set_exception(RequestCancelled("the call was interrupted"))
        except anyio.get_cancelled_exc_class():
            future.set_exception(RequestCancelled("the blocking session was closed"))
            raise
        except BaseException as exc:  # the caller's to handle, not the loop's
            future.set_exception(exc)
        finally:
            job.scope = None

    # -- any thread --------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether calls are accepted (the loop runs and no stop was asked for)."""
        return not self._stopping and self._thread.is_alive()

    def run_soon(self, func: Callable[..., object], *args: Any) -> bool:
        """Schedule ``func(*args)`` on the loop thread; False if the loop has ended."""
        token = self._token
        if token is None or not self._thread.is_alive():
            return False
        try:
            token.backend_class.run_sync_soon(func, args, token.native_token)
        except (anyio.RunFinishedError, RuntimeError):
            return False
        return True

    def spawn(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``await func(*args)`` on the loop without waiting (its errors dropped)."""
        if not self._stopping:
            self.run_soon(self._start, _Job(func, args))

    def call(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await func(*args)`` on the loop; return its result in this thread.

        Raises:
            RuntimeError: The loop has stopped, or this is the loop's own thread.
            KeyboardInterrupt: The wait was interrupted: the call was
                cancelled (and had ended, unless it took over ``CANCEL_GRACE``).
        """
        if threading.get_ident() == self.ident:
            raise RuntimeError(_OWN_THREAD)
        check_not_async("a blocking anysoup call")
        job = _Job(func, args)
        if self._stopping or not self.run_soon(self._start, job):
            raise RuntimeError("the blocking session is closed")
        future = job.future
        try:
            result: T = self._wait(future)
        except BaseException as exc:
            if isinstance(exc, RuntimeError) or (future.done() and future.exception()):
                raise
            if not future.done():
                # Interrupted (Ctrl-C) while the call runs: cancel it, let it end.
                self.run_soon(job.interrupt)
                concurrent.futures.wait([future], CANCEL_GRACE)
            if future.done() and not future.exception():
                # It had succeeded, the result unseen: a body stream or a
                # WebSocket nobody will close is closed on the loop, now.
                close = getattr(future.result(), "aclose", None)
                if close is not None:
                    self.spawn(close)
            raise
        return result

    def _wait(self, future: concurrent.futures.Future[T]) -> T:
        """The call's outcome (a signal can interrupt the wait)."""
        pending = self._pending
        pending.add(future)
        try:
            if self._ended and not future.done():
                raise RuntimeError("the blocking session is closed")
            while True:
                try:
                    future.exception(POLL)
                except concurrent.futures.TimeoutError:
                    continue
                return future.result()
        finally:
            pending.discard(future)

    def call_sync(self, func: Callable[..., T], *args: Any) -> T:
        """Run the plain function ``func(*args)`` on the loop thread; return its result.

        It runs in the loop's callback itself, no task: nothing to cancel.
        """
        if threading.get_ident() == self.ident:
            raise RuntimeError(_OWN_THREAD)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(func(*args))
            except BaseException as exc:  # the caller's to handle, not the loop's
                future.set_exception(exc)

        if self._stopping or not self.run_soon(run):
            raise RuntimeError("the blocking session is closed")
        return self._wait(future)

    def stop(self, *, wait: bool = True) -> None:
        """Cancel the calls, close the resource, end the loop (and wait for it).

        Without ``wait`` it only asks, from any thread (a finalizer).
        """
        if not self._stopping:
            self._stopping = True
            stop = self._stop
            if stop is not None:
                self.run_soon(stop.set)
            _running.discard(self)
        if wait and threading.get_ident() != self.ident:
            self._thread.join()


@atexit.register
def _stop_at_exit() -> None:
    """Stop the loops of sessions never closed, so their features finish (bounded)."""
    loops = list(_running)
    for loop in loops:
        loop.stop(wait=False)
    deadline = EXIT_GRACE / max(len(loops), 1)
    for loop in loops:
        loop._thread.join(deadline)
