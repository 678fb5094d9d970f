"""``WebsocketExtension``: the base of every WebSocket extension (a wsproto ``Extension``).

The type sits in the model because three layers meet it: the manager
feature makes instances, the handshake offers and configures them, and the
WebSocket driver hands the accepted ones to wsproto. Nothing here does I/O.
"""

from __future__ import annotations

from wsproto.extensions import Extension

from .public import public

__all__ = ["WebsocketExtension"]


@public
class WebsocketExtension(Extension):
    """A WebSocket extension (libsoup's ``SoupWebsocketExtension``).

    To write one, subclass it: set :attr:`name`, override
    :meth:`request_params` to offer parameters and :meth:`configure` to take
    the server's, and override wsproto's frame hooks (``frame_inbound_header``,
    ``frame_inbound_payload_data``, ``frame_inbound_complete``,
    ``frame_outbound``) to transform frames. Then
    ``session.add_feature_by_type(MyExtension)``: the session makes a new
    instance for every handshake, so one instance serves one connection and
    the constructor must take no arguments.
    """

    # Not a ClassVar: wsproto declares ``name`` as an instance attribute and
    # mypy forbids turning it into a class one. Subclasses set it on the class.
    #: The extension's token in ``Sec-WebSocket-Extensions`` (RFC 6455 §9.1).
    name: str = ""
    #: The largest message, in bytes, the extension may produce while reading
    #: (0: no limit). The connection sets it, before and while the extension
    #: is in use: the program may change the limit at any time.
    max_message_size: int = 0
    # Set once the server accepted the extension; wsproto drops disabled ones.
    _configured: bool = False

    def request_params(self) -> str:
        """The parameters to offer after the name, as ``"a; b=1"``.

        Returns:
            The parameter text, or ``""`` to offer the bare name (the default).
        """
        return ""

    def configure(self, params: dict[str, str | None]) -> None:
        """Take the parameters the server accepted the extension with.

        The default accepts only an answer without parameters.

        Args:
            params: The parameters of the server's answer by name; the value
                of a parameter given without ``=`` is None.

        Raises:
            ValueError: The answer can't be accepted; the text says why and
                the handshake fails with it.
        """
        if params:
            raise ValueError(f"unexpected parameters {sorted(params)!r}")
        self._configured = True

    def offer(self) -> bool | str:
        """What wsproto's handshake would offer: :meth:`request_params`, or True for none."""
        return self.request_params() or True

    def enabled(self) -> bool:
        """Whether the server accepted the extension (:meth:`configure` returned)."""
        return self._configured

    def __repr__(self) -> str:
        state = " enabled" if self._configured else ""
        return f"<{type(self).__module__}.{type(self).__qualname__} {self.name!r}{state}>"
