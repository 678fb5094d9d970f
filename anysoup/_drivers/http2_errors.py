"""What ends an HTTP/2 exchange for another attempt, importable without h2.

Theory of operation: the core sends every message, over HTTP/1.1 or
HTTP/2, and catches these errors to try again; the HTTP/2 driver and the
exchange raise them. They live here, apart from the driver, so that the
core's ``except`` clauses don't load h2 (and hpack) for a program that
never meets an HTTP/2 server: the driver loads with the first connection
that ALPN made HTTP/2.
"""

from __future__ import annotations

from .._model.exceptions import NetworkError

__all__ = ["Http11Required", "Misdirected", "StreamUnprocessed"]


class StreamUnprocessed(NetworkError):
    """The server did not process the stream (GOAWAY above it, REFUSED_STREAM).

    RFC 9113 §8.7: such a request may be sent again, whatever its method;
    the core does so on another connection without counting a re-send.
    """


class Http11Required(NetworkError):
    """The server reset the stream with HTTP_1_1_REQUIRED: send it over HTTP/1.1."""


class Misdirected(NetworkError):
    """A 421 answer on HTTP/2: the core sends the message again on a new connection."""
