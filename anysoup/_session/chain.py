"""The feature chain: features as middleware around the core send coroutine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from .._features.feature import CallNext, SessionFeature

if TYPE_CHECKING:
    from .._model.body import InputStream
    from .._model.message import Message

__all__ = ["build_chain"]

#: A stage's method: ``feature.handle`` or ``feature.handle_network``.
HandleFn = Callable[["Message", CallNext], Awaitable["InputStream"]]


def build_chain(features: Iterable[SessionFeature], core: CallNext) -> CallNext:
    """Compose the features that handle messages around ``core``.

    Stages are ordered by ``chain_position`` (outer first), and a feature
    with a ``network_position`` gets a second stage there (the network edge);
    a stage whose feature type the message disabled is skipped for that message. The
    result is built once per change of the feature set, not per message.
    """
    stages: list[tuple[int, SessionFeature, HandleFn]] = []
    for feature in features:
        if feature.chain_position is not None:
            stages.append((feature.chain_position, feature, feature.handle))
        if feature.network_position is not None:
            stages.append((feature.network_position, feature, feature.handle_network))
    stages.sort(key=lambda stage: stage[0])  # stable: equal positions keep their order
    handler = core
    for _, feature, handle in reversed(stages):
        handler = _stage(feature, handle, handler)
    return handler


def _stage(feature: SessionFeature, handle: HandleFn, inner: CallNext) -> CallNext:
    feature_type = type(feature)

    async def call(msg: Message) -> InputStream:
        if msg._disabled and msg.is_feature_disabled(feature_type):
            return await inner(msg)
        return await handle(msg, inner)

    return call
