"""The package version, read by hatchling and by the User-Agent default."""

__version__ = "0.1.0"
