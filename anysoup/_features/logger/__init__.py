"""The Logger feature and the lines it prints."""
