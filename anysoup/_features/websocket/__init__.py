"""WebSocket extensions offered by a session: the manager feature and permessage-deflate."""
