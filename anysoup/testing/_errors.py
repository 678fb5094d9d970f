"""What the router raises when a test's expectations are not met.

They are :class:`AssertionError` subclasses, not :class:`anysoup.Error`
ones, on purpose: code under test that handles network failures with
``except anysoup.Error`` must not swallow a test's mistake (a request
nobody mocked) and carry on as if the network were down.
"""

from __future__ import annotations

__all__ = ["MockError", "RoutesNotCalledError", "UnmatchedRequestError"]


class MockError(AssertionError):
    """The mock router's expectations were not met (the base of its errors).

    Also raised on its own when a route's sequence of side effects runs out.
    """


class UnmatchedRequestError(MockError):
    """A request matched no route and its host was not passed through.

    The text lists the routes and why each did not match. Add a route, pass
    the host through (:meth:`MockRouter.pass_through`), or make the router
    lenient with ``assert_all_mocked=False`` (unmatched requests then get an
    empty 200). Raised for the request, and again when the router exits if
    the code under test swallowed it.
    """


class RoutesNotCalledError(MockError):
    """Routes were never called by the time the router exited.

    Raised at exit (the end of ``with router:``, or the fixture's teardown)
    unless the router has ``assert_all_called=False`` or the routes were
    added with ``optional=True``.
    """
