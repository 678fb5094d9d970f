"""HTTP Strict Transport Security: the HSTSEnforcer feature and its policies."""
