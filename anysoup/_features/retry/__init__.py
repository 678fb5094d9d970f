"""The Retry feature and its policy."""
