"""Wire protocols over an anyio byte stream: HTTP/1.1 (h11) and WebSocket (wsproto)."""
