"""The request helpers: ``Session.request`` and ``get``, ``post``, … (httpx's shape).

Theory of operation: a helper turns its arguments into a :class:`Message`
(``_model/request_args.py``: synchronous, every argument checked before
anything is sent), sends it with ``send_and_read`` — so through the whole
chain: redirects, HSTS, retries, the cache, decoding, auth, cookies and the
logger; nothing is bypassed — stores the body in ``msg.response_body`` and
returns the message. ``msg.text``, ``msg.json()`` and
``msg.raise_for_status()`` then read it (``_model/response.py``). The
blocking session has the same helpers (``_blocking/requests.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._model.request_args import Content, Data, Headers, Params, base_url_from, build_request

if TYPE_CHECKING:
    from yarl import URL

    from .._model.cancellable import Cancellable
    from .._model.message import Message

__all__ = ["RequestHelpers"]


class RequestHelpers:
    """The request helpers of :class:`anysoup.Session` (a base class of it)."""

    _base_url: URL | None = None

    if TYPE_CHECKING:

        async def send_and_read(
            self,
            msg: Message,
            *,
            cancellable: Cancellable | None = None,
            io_priority: int = 0,
            max_size: int | None = None,
        ) -> bytes: ...

    @property
    def base_url(self) -> URL | None:
        """The URL the request helpers join relative URLs to, or None.

        With None, the helpers need absolute URLs. Set it from a str or a
        :class:`yarl.URL`; it is kept with a path ending in ``/``
        (``https://api.test/v1`` reads back as ``https://api.test/v1/``).
        """
        return self._base_url

    @base_url.setter
    def base_url(self, value: str | URL | None) -> None:
        self._base_url = base_url_from(value)

    async def request(
        self,
        method: str,
        url: str | URL,
        *,
        params: Params | None = None,
        headers: Headers | None = None,
        json: Any = None,
        data: Data | None = None,
        content: Content | None = None,
        cancellable: Cancellable | None = None,
        io_priority: int = 0,
        max_size: int | None = None,
    ) -> Message:
        """Send a request, read its whole body and return the message.

        ``msg = await session.request("GET", url)``; the status and headers
        are on the message, the body in ``msg.response_body``, ``msg.text``
        and ``msg.json()``. HTTP error statuses are not errors: call
        ``msg.raise_for_status()``. The message goes through every feature,
        as :meth:`send_and_read` sends it.

        Args:
            method: The method; ``"get"`` is sent as ``GET`` (:doc:`/requests`).
            url: An absolute URL, or one relative to :attr:`base_url`.
            params: Query parameters added after the URL's own query: a
                mapping (a sequence value repeats the name) or pairs.
            headers: Request headers: a mapping or pairs.
            json: A value sent as compact JSON with ``Content-Type:
                application/json``.
            data: A form sent urlencoded (``application/x-www-form-urlencoded``),
                from a mapping or pairs; or a :class:`anysoup.Multipart`.
            content: A raw body: bytes, str (sent as UTF-8), an (async)
                iterable of bytes or an anyio byte stream.
            cancellable: Cancels the call from elsewhere (RequestCancelled).
            io_priority: Accepted for libsoup compatibility.
            max_size: The most bytes of body accepted (None: no limit).

        Raises:
            anysoup.BodyTooLarge: The body is over ``max_size``.
            anysoup.Error: The request could not be sent or the response was
                broken; ``.message`` is the message.
            ValueError: A bad method or URL, or more than one body given.
            TypeError: An argument of the wrong type.
        """
        msg = build_request(
            method,
            url,
            base_url=self._base_url,
            params=params,
            headers=headers,
            json=json,
            data=data,
            content=content,
        )
        msg.response_body = await self.send_and_read(
            msg, cancellable=cancellable, io_priority=io_priority, max_size=max_size
        )
        return msg

    async def get(
        self,
        url: str | URL,
        *,
        params: Params | None = None,
        headers: Headers | None = None,
        cancellable: Cancellable | None = None,
        io_priority: int = 0,
        max_size: int | None = None,
    ) -> Message:
        """``GET url``: :meth:`request` without a body."""
        return await self.request(
            "GET", url, params=params, headers=headers, cancellable=cancellable,
            io_priority=io_priority, max_size=max_size,
        )  # fmt: skip

    async def head(
        self,
        url: str | URL,
        *,
        params: Params | None = None,
        headers: Headers | None = None,
        cancellable: Cancellable | None = None,
        io_priority: int = 0,
    ) -> Message:
        """``HEAD url``: :meth:`request` without a body; ``msg.response_body`` is ``b""``."""
        return await self.request(
            "HEAD", url, params=params, headers=headers, cancellable=cancellable,
            io_priority=io_priority,
        )  # fmt: skip

    async def options(
        self,
        url: str | URL,
        *,
        params: Params | None = None,
        headers: Headers | None = None,
        cancellable: Cancellable | None = None,
        io_priority: int = 0,
        max_size: int | None = None,
    ) -> Message:
        """``OPTIONS url``: :meth:`request` without a body."""
        return await self.request(
            "OPTIONS", url, params=params, headers=headers, cancellable=cancellable,
            io_priority=io_priority, max_size=max_size,
        )  # fmt: skip

    async def delete(
        self,
        url: str | URL,
        *,
        params: Params | None = None,
        headers: Headers | None = None,
        cancellable: Cancellable | None = None,
        io_priority: int = 0,
        max_size: int | None = None,
    ) -> Message:
        """``DELETE url``: :meth:`request` without a body."""
        return await self.request(
            "DELETE", url, params=params, headers=headers, cancellable=cancellable,
            io_priority=io_priority, max_size=max_size,
        )  # fmt: skip

    async def post(
        self,
        url: str | URL,
        *,
        params: Params | None = None,
        headers: Headers | None = None,
        json: Any = None,
        data: Data | None = None,
        content: Content | None = None,
        cancellable: Cancellable | None = None,
        io_priority: int = 0,
        max_size: int | None = None,
    ) -> Message:
        """``POST url``: :meth:`request` with at most one of ``json``, ``data``, ``content``."""
        return await self.request(
            "POST", url, params=params, headers=headers, json=json, data=data, content=content,
            cancellable=cancellable, io_priority=io_priority, max_size=max_size,
        )  # fmt: skip

    async def put(
        self,
        url: str | URL,
        *,
        params: Params | None = None,
        headers: Headers | None = None,
        json: Any = None,
        data: Data | None = None,
        content: Content | None = None,
        cancellable: Cancellable | None = None,
        io_priority: int = 0,
        max_size: int | None = None,
    ) -> Message:
        """``PUT url``: :meth:`request` with at most one of ``json``, ``data``, ``content``."""
        return await self.request(
            "PUT", url, params=params, headers=headers, json=json, data=data, content=content,
            cancellable=cancellable, io_priority=io_priority, max_size=max_size,
        )  # fmt: skip

    async def patch(
        self,
        url: str | URL,
        *,
        params: Params | None = None,
        headers: Headers | None = None,
        json: Any = None,
        data: Data | None = None,
        content: Content | None = None,
        cancellable: Cancellable | None = None,
        io_priority: int = 0,
        max_size: int | None = None,
    ) -> Message:
        """``PATCH url``: :meth:`request` with at most one of ``json``, ``data``, ``content``."""
        return await self.request(
            "PATCH", url, params=params, headers=headers, json=json, data=data, content=content,
            cancellable=cancellable, io_priority=io_priority, max_size=max_size,
        )  # fmt: skip
