"""``WebsocketExtensionManager``: the extensions a session offers in a WebSocket handshake."""

from __future__ import annotations

from typing import ClassVar

from ..._model.websocket_extension import WebsocketExtension
from ..feature import SessionFeature
from .deflate_policy import WebsocketExtensionDeflate

__all__ = ["WebsocketExtensionManager"]


class WebsocketExtensionManager(SessionFeature):
    """The WebSocket extensions a session offers (libsoup's ``SoupWebsocketExtensionManager``).

    A default feature, holding :class:`WebsocketExtensionDeflate`.
    ``session.add_feature_by_type(MyExtension)`` adds an extension type,
    ``remove_feature_by_type(WebsocketExtensionDeflate)`` stops offering
    compression; without the manager no extension is offered at all. It
    takes no part in sending messages.
    """

    chain_position: ClassVar[int | None] = None

    def __init__(self) -> None:
        self._types: list[type[WebsocketExtension]] = [WebsocketExtensionDeflate]

    @property
    def extension_types(self) -> tuple[type[WebsocketExtension], ...]:
        """The extension types offered, in the order of the offer."""
        return tuple(self._types)

    def add_sub_feature(self, feature_type: type) -> bool:
        """Offer a :class:`WebsocketExtension` subclass that has a name."""
        if not (isinstance(feature_type, type) and issubclass(feature_type, WebsocketExtension)):
            return False
        if not feature_type.name:
            return False
        if feature_type not in self._types:
            self._types.append(feature_type)
        return True

    def remove_sub_feature(self, feature_type: type) -> bool:
        """Stop offering an extension type; return whether it was offered."""
        if feature_type in self._types:
            self._types.remove(feature_type)
            return True
        return False

    def has_sub_feature(self, feature_type: type) -> bool:
        """Whether the extension type is offered."""
        return feature_type in self._types

    def new_offer(self) -> list[WebsocketExtension]:
        """Fresh instances for one handshake, one per type, in order."""
        return [extension_type() for extension_type in self._types]

    def __repr__(self) -> str:
        names = [t.name for t in self._types]
        return f"<{type(self).__module__}.{type(self).__qualname__} {names!r}>"
