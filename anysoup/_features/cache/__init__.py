"""The HTTP cache feature (RFC 9111)."""
