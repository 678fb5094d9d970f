"""The ``anysoup`` command."""
