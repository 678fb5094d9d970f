"""``WebsocketExtensionManager``: the extensions a session offers in a WebSocket handshake.

The manager is a default feature of every session, yet the extensions it
holds are wsproto extensions: the manager itself loads without wsproto, and
makes its default offer (permessage-deflate) on first use, when a handshake
asks for it or a program adds, removes or looks for an extension type. A
program that opens no WebSocket never imports wsproto.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, ClassVar, TypeGuard

from ..feature import SessionFeature

if TYPE_CHECKING:
    from ..._model.websocket_extension import WebsocketExtension

__all__ = ["WebsocketExtensionManager"]

#: The module of the extensions' base class (it imports wsproto).
_BASE_MODULE = "anysoup._model.websocket_extension"


def _is_extension_type(feature_type: object) -> TypeGuard[type[WebsocketExtension]]:
    """Whether ``feature_type`` is a :class:`WebsocketExtension` subclass.

    No class derives from WebsocketExtension before its module is loaded: until
    then the answer is no, and wsproto stays unloaded for the question.
    """
    if _BASE_MODULE not in sys.modules:
        return False
    from ..._model.websocket_extension import WebsocketExtension

    return isinstance(feature_type, type) and issubclass(feature_type, WebsocketExtension)


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
        # None stands for the default offer, [WebsocketExtensionDeflate], not made yet.
        self._types: list[type[WebsocketExtension]] | None = None

    def _offered(self) -> list[type[WebsocketExtension]]:
        """The extension types offered, the default offer made on first use."""
        if self._types is None:
            from .deflate_policy import WebsocketExtensionDeflate  # loads wsproto

            self._types = [WebsocketExtensionDeflate]
        return self._types

    @property
    def extension_types(self) -> tuple[type[WebsocketExtension], ...]:
        """The extension types offered, in the order of the offer."""
        return tuple(self._offered())

    def add_sub_feature(self, feature_type: type) -> bool:
        """Offer a :class:`WebsocketExtension` subclass that has a name."""
        if not _is_extension_type(feature_type) or not feature_type.name:
            return False
        types = self._offered()
        if feature_type not in types:
            types.append(feature_type)
        return True

    def remove_sub_feature(self, feature_type: type) -> bool:
        """Stop offering an extension type; return whether it was offered."""
        if not _is_extension_type(feature_type):
            return False
        types = self._offered()
        if feature_type in types:
            types.remove(feature_type)
            return True
        return False

    def has_sub_feature(self, feature_type: type) -> bool:
        """Whether the extension type is offered."""
        return _is_extension_type(feature_type) and feature_type in self._offered()

    def new_offer(self) -> list[WebsocketExtension]:
        """Fresh instances for one handshake, one per type, in order."""
        return [extension_type() for extension_type in self._offered()]

    def __repr__(self) -> str:
        names = [t.name for t in self._offered()]
        return f"<{type(self).__module__}.{type(self).__qualname__} {names!r}>"
