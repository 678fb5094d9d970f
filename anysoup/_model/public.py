"""``@public``: a class that loads on first use still calls itself ``anysoup.<name>``.

Theory of operation: ``anysoup/__init__.py`` re-exports every public class
and sets its ``__module__`` to ``"anysoup"``, so reprs, tracebacks, pickles
and the docs say ``anysoup.Cache``, not the private module that defines it.
The classes the package imports at once get that from a loop at its end.
The others load on first use (the package's ``__getattr__``), and may load
before anyone asks the package for them: the session imports the WebSocket
connection when a program opens a WebSocket, the manager imports
permessage-deflate for a handshake. Those classes carry this decorator, so
that they are named right from the moment they exist. It is applied last
(outermost), after ``@dataclass``, which must still see the defining module
while it builds the class.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["public"]

_C = TypeVar("_C", bound=type)


def public(cls: _C) -> _C:
    """Name ``cls`` as a member of the package ``anysoup``, which re-exports it.

    Args:
        cls: A class listed in ``anysoup.__all__`` whose module the package
            imports on first use.

    Returns:
        ``cls`` itself.
    """
    cls.__module__ = "anysoup"
    return cls
