"""Opening byte streams: name lookup, TCP and Unix sockets, TLS, proxies and their tunnels."""
