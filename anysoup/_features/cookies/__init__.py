"""Cookies: the CookieJar feature, its storage and RFC 6265bis parsing and matching."""
