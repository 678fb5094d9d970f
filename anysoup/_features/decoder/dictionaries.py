"""Offering a compression dictionary (RFC 9842) on a request: the ContentDecoder's part.

Theory of operation
-------------------
Before each hop of a message, :func:`offer_dictionary` decides whether the
request offers a dictionary, and sets the headers that do:

1. It takes back what it set on the previous hop (``Accept-Encoding``,
   ``Available-Dictionary``, ``Dictionary-ID``), each only if the header
   still holds the value it set: a redirect to another origin must not
   carry the first origin's offer.
2. Nothing is offered unless the request goes to a secure context (https,
   or http to a loopback host) and this installation decodes ``dcb`` or
   ``dcz``. A program's own ``Accept-Encoding`` decides which dictionary
   codings are wanted (none if it lists neither).
3. The dictionary is the message's (put there by the cache for this hop)
   if it is same-origin with the request, else the first answer of the
   message's ``request_compression_dictionary`` handlers. A dictionary
   from a handler without a URL is bound to the request's origin.
4. Then ``Accept-Encoding`` gets the dictionary codings (when the decoder
   writes it), and ``Available-Dictionary`` and ``Dictionary-ID`` are set
   unless the program set them; what was set is remembered on the message.

The response side, decoding with the message's dictionary, is in
``decoder.py`` and ``dictionary_codings_policy.py``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from yarl import URL

from ..._model.compression_dictionary import CompressionDictionary
from ..._model.signals import active
from ..cache.dictionary_policy import (
    available_dictionary_value,
    dictionary_id_value,
    secure_context,
)
from .dictionary_codings_policy import decodable_codings

if TYPE_CHECKING:
    from ..._model.message import Message

__all__ = ["offer_dictionary"]


async def offer_dictionary(msg: Message, accept_encoding: str) -> None:
    """Offer a dictionary on ``msg``'s next hop, if there is one to offer.

    Args:
        msg: The message about to be sent.
        accept_encoding: The ``Accept-Encoding`` the decoder would set.
    """
    headers = msg.request_headers
    if msg._dictionary_offer is not None:
        for name, value in msg._dictionary_offer:
            if headers.get_list(name) == value:
                headers.remove(name)
        msg._dictionary_offer = None
    codings = decodable_codings()
    if not codings or not secure_context(msg.uri):
        return
    own = headers.get_list("Accept-Encoding")
    if own is not None:
        listed = _accepted(own)
        codings = tuple(coding for coding in codings if coding in listed)
        if not codings:
            return
    dictionary = msg._compression_dictionary
    if dictionary is not None and not _same_origin(dictionary.url, msg.uri):
        dictionary = msg._compression_dictionary = None
    if dictionary is None:
        dictionary = await _ask(msg)
        if dictionary is None:
            return
        msg._compression_dictionary = dictionary
    offer = []
    if own is None:
        value = ", ".join([accept_encoding, *codings])
        headers.append("Accept-Encoding", value)
        offer.append(("Accept-Encoding", value))
    if "Available-Dictionary" not in headers:
        value = available_dictionary_value(dictionary.sha256)
        headers.append("Available-Dictionary", value)
        offer.append(("Available-Dictionary", value))
    if dictionary.id is not None and "Dictionary-ID" not in headers:
        value = dictionary_id_value(dictionary.id)
        headers.append("Dictionary-ID", value)
        offer.append(("Dictionary-ID", value))
    msg._dictionary_offer = tuple(offer)


async def _ask(msg: Message) -> CompressionDictionary | None:
    """The first dictionary the message's ``request_compression_dictionary`` handlers give."""
    signal = active(msg, "request_compression_dictionary")
    if signal is None:
        return None
    answer = await signal.emit_until_value()
    if answer is None:
        return None
    if isinstance(answer, bytes | bytearray | memoryview):
        return CompressionDictionary(bytes(answer), url=str(msg.uri))
    if not isinstance(answer, CompressionDictionary):
        raise TypeError(
            "request_compression_dictionary: a handler returned "
            f"{type(answer).__name__}; expected CompressionDictionary, bytes or None"
        )
    if answer.url is None:
        return answer._bound_to(msg.uri)
    # RFC 9842 §2.2.2: a dictionary serves only its own origin.
    return answer if _same_origin(answer.url, msg.uri) else None


#: A weight of zero (RFC 9110 §12.4.2): the coding is not acceptable.
_ZERO_WEIGHT = re.compile(r";\s*q\s*=\s*0(?:\.0{0,3})?\s*(?:;|$)", re.IGNORECASE)


def _accepted(accept_encoding: str) -> set[str]:
    """The codings an ``Accept-Encoding`` value accepts (lowercase; ``q=0`` ones left out)."""
    accepted = set()
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        if _ZERO_WEIGHT.search(";" + params) is None:
            accepted.add(coding.strip(" \t").lower())
    return accepted


def _same_origin(url: str | None, request: URL) -> bool:
    """Whether a dictionary from ``url`` may serve ``request`` (None: whoever set it said so)."""
    if url is None:
        return True
    origin = URL(url)
    return (origin.scheme, origin.raw_host, origin.port) == (
        request.scheme,
        request.raw_host,
        request.port,
    )
