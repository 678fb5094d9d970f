"""Testing code that uses anysoup: a mock router instead of the network.

:class:`MockRouter` is a session feature that answers requests from routes
at the innermost stage of the chain, so every other feature runs against
the mocked answers. The pytest plugin (installed with anysoup) gives the
``anysoup_mock`` fixture, a router active for the test. See :doc:`/testing`.
"""

from ._errors import MockError as MockError
from ._errors import RoutesNotCalledError as RoutesNotCalledError
from ._errors import UnmatchedRequestError as UnmatchedRequestError
from ._matching import Request as Request
from ._response import Response as Response
from ._router import MockRouter as MockRouter
from ._routes import Call as Call
from ._routes import CallList as CallList
from ._routes import Route as Route
from ._routes import SideEffect as SideEffect

__all__ = [
    "MockRouter",
    "Route",
    "Response",
    "Request",
    "Call",
    "CallList",
    "SideEffect",
    "MockError",
    "UnmatchedRequestError",
    "RoutesNotCalledError",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("anysoup.testing."):
        _obj.__module__ = "anysoup.testing"
del _name, _obj
