"""Request methods: which are sent upper-cased, which may be sent twice.

Methods are case-sensitive (RFC 9110 §9.1), yet ``get`` is never meant as an
extension method: :func:`normal_method` upper-cases the registered methods
given in another case (RFC 9110 §9.3's eight and PATCH, RFC 5789) and keeps
every other name as it is given. httpx and requests upper-case every
method; anysoup keeps extension methods exact, since a server may define
one in lower case.
"""

from __future__ import annotations

from .grammar import TOKEN_FULL

__all__ = ["IDEMPOTENT_METHODS", "REGISTERED_METHODS", "normal_method"]

#: The methods sent upper-cased whatever the case they are given in.
REGISTERED_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
#: Methods whose request may be sent twice (DESIGN §3, libsoup's list): RFC
#: 9110 §9.2.2's idempotent methods with WebDAV's PROPFIND. The core re-sends
#: them after a stale connection; the Retry feature retries them by default.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND", "TRACE", "PUT", "DELETE"})


def normal_method(method: object) -> str:
    """``method`` checked, and upper-cased if it is a registered method in another case.

    Raises:
        ValueError: ``method`` is not a token (RFC 9110 §9.1, §5.6.2).
    """
    if not isinstance(method, str) or TOKEN_FULL.match(method) is None:
        raise ValueError(f"method: {method!r} is not an HTTP method")
    upper = method.upper()
    return upper if upper in REGISTERED_METHODS else method
