"""The model: messages, headers, bodies, URIs, enums, errors, signals (below everything)."""
