"""The request helpers of :class:`anysoup.blocking.Session` (``get``, ``post``, …).

The twins of ``_session/requests.py``: the message is built on the calling
thread (``_model/request_args.py``: a bad argument raises at once, before
any hop to the loop) and sent with the blocking ``send_and_read``, so it
goes through the async session's whole chain on the loop thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._model.request_args import Content, Data, Headers, Params, build_request

if TYPE_CHECKING:
    from yarl import URL

    from .._model.cancellable import Cancellable
    from .._model.message import Message

__all__ = ["BlockingRequestHelpers"]


class BlockingRequestHelpers:
    """``request``, ``get``, ``head``, ``options``, ``delete``, ``post``, ``put``, ``patch``."""

    if TYPE_CHECKING:

        def send_and_read(
            self,
            msg: Message,
            cancellable: Cancellable | None = None,
            max_size: int | None = None,
        ) -> bytes: ...

        def _base_url(self) -> URL | None: ...

    def request(
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

        As :meth:`anysoup.Session.request` (same arguments): the body is in
        ``msg.response_body``; ``msg.text``, ``msg.json()`` and
        ``msg.raise_for_status()`` read it. ``io_priority`` is accepted for
        symmetry with the async session.

        Raises:
            anysoup.BodyTooLarge: The body is over ``max_size``.
            anysoup.Error: As :meth:`anysoup.Session.request`.
            ValueError: A bad method or URL, or more than one body given.
            TypeError: An argument of the wrong type.
        """
        msg = build_request(
            method,
            url,
            base_url=self._base_url(),
            params=params,
            headers=headers,
            json=json,
            data=data,
            content=content,
        )
        msg.response_body = self.send_and_read(msg, cancellable, max_size)
        return msg

    def get(
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
        return self.request(
            "GET", url, params=params, headers=headers, cancellable=cancellable,
            max_size=max_size,
        )  # fmt: skip

    def head(
        self,
        url: str | URL,
        *,
        params: Params | None = None,
        headers: Headers | None = None,
        cancellable: Cancellable | None = None,
        io_priority: int = 0,
    ) -> Message:
        """``HEAD url``: :meth:`request` without a body; ``msg.response_body`` is ``b""``."""
        return self.request("HEAD", url, params=params, headers=headers, cancellable=cancellable)

    def options(
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
        return self.request(
            "OPTIONS", url, params=params, headers=headers, cancellable=cancellable,
            max_size=max_size,
        )  # fmt: skip

    def delete(
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
        return self.request(
            "DELETE", url, params=params, headers=headers, cancellable=cancellable,
            max_size=max_size,
        )  # fmt: skip

    def post(
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
        return self.request(
            "POST", url, params=params, headers=headers, json=json, data=data, content=content,
            cancellable=cancellable, max_size=max_size,
        )  # fmt: skip

    def put(
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
        return self.request(
            "PUT", url, params=params, headers=headers, json=json, data=data, content=content,
            cancellable=cancellable, max_size=max_size,
        )  # fmt: skip

    def patch(
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
        return self.request(
            "PATCH", url, params=params, headers=headers, json=json, data=data, content=content,
            cancellable=cancellable, max_size=max_size,
        )  # fmt: skip
