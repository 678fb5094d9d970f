"""The feature chain: features as middleware around the core send coroutine."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._features.feature import CallNext, SessionFeature

if TYPE_CHECKING:
    from .._model.body import InputStream
    from .._model.message import Message

__all__ = ["build_chain"]


def build_chain(features: Iterable[SessionFeature], core: CallNext) -> CallNext:
    """Compose the features that handle messages around ``core``.

    Stages are ordered by ``chain_position`` (outer first); a stage whose
    feature type the message disabled is skipped for that message. The
    result is built once per change of the feature set, not per message.
    """
    stages = sorted(
        (f for f in features if f.chain_position is not None),
        key=lambda f: f.chain_position or 0,
    )
    handler = core
    for stage in reversed(stages):
        handler = _stage(stage, handler)
    return handler


def _stage(feature: SessionFeature, inner: CallNext) -> CallNext:
    feature_type = type(feature)
    handle = feature.handle

    async def call(msg: Message) -> InputStream:
        if msg._disabled and msg.is_feature_disabled(feature_type):
            return await inner(msg)
        return await handle(msg, inner)

    return call
