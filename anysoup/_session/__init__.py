"""The Session: properties, the feature chain, the core send coroutine, websocket_connect."""
