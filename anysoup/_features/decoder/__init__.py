"""Content decoding: the ContentDecoder feature and the codings it stacks."""
