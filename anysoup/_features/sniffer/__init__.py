"""Content sniffing (WHATWG MIME Sniffing): the ContentSniffer feature and its tables."""
