"""anysoup: libsoup's Session for structured concurrency, on Trio and asyncio.

Everything public is importable from here; the modules behind it are private,
except :mod:`anysoup.blocking` (the blocking calls), which loads on first use.
So does every name that a plain HTTP/1.1 request does not need (WebSocket,
the cache, cookies, HSTS, NTLM, the logger...): ``import anysoup`` stays cheap.
"""

from typing import TYPE_CHECKING, Any

from ._features.auth.auth_policy import Auth as Auth
from ._features.auth.auth_policy import AuthBasic as AuthBasic
from ._features.auth.digest_policy import AuthDigest as AuthDigest
from ._features.auth.manager import AuthManager as AuthManager
from ._features.decoder.decoder import ContentDecoder as ContentDecoder
from ._features.feature import SessionFeature as SessionFeature
from ._features.websocket.manager import WebsocketExtensionManager as WebsocketExtensionManager
from ._model.body import InputStream as InputStream
from ._model.body import RequestBody as RequestBody
from ._model.cancellable import Cancellable as Cancellable
from ._model.certificate import TlsCertificate as TlsCertificate
from ._model.certificate import TlsInteraction as TlsInteraction
from ._model.enums import CacheResult as CacheResult
from ._model.enums import HTTPVersion as HTTPVersion
from ._model.enums import LoggerLogLevel as LoggerLogLevel
from ._model.enums import MessageFlags as MessageFlags
from ._model.enums import MessagePriority as MessagePriority
from ._model.enums import NetworkEvent as NetworkEvent
from ._model.enums import SessionErrorCode as SessionErrorCode
from ._model.enums import SpliceFlags as SpliceFlags
from ._model.enums import TLDErrorCode as TLDErrorCode
from ._model.enums import TlsCertificateFlags as TlsCertificateFlags
from ._model.enums import TlsPasswordFlags as TlsPasswordFlags
from ._model.enums import WebsocketCloseCode as WebsocketCloseCode
from ._model.enums import WebsocketDataType as WebsocketDataType
from ._model.enums import WebsocketErrorCode as WebsocketErrorCode
from ._model.enums import WebsocketState as WebsocketState
from ._model.exceptions import BodyTooLarge as BodyTooLarge
from ._model.exceptions import ConnectError as ConnectError
from ._model.exceptions import EncodingError as EncodingError
from ._model.exceptions import Error as Error
from ._model.exceptions import HTTPStatusError as HTTPStatusError
from ._model.exceptions import IncompleteBody as IncompleteBody
from ._model.exceptions import MessageAlreadyInQueue as MessageAlreadyInQueue
from ._model.exceptions import NetworkError as NetworkError
from ._model.exceptions import ParsingError as ParsingError
from ._model.exceptions import RedirectBadUri as RedirectBadUri
from ._model.exceptions import RedirectNoLocation as RedirectNoLocation
from ._model.exceptions import RequestCancelled as RequestCancelled
from ._model.exceptions import SessionError as SessionError
from ._model.exceptions import TimeoutError as TimeoutError
from ._model.exceptions import TLDError as TLDError
from ._model.exceptions import TlsError as TlsError
from ._model.exceptions import TooManyRedirects as TooManyRedirects
from ._model.exceptions import TooManyRestarts as TooManyRestarts
from ._model.exceptions import WebsocketClosed as WebsocketClosed
from ._model.exceptions import WebsocketError as WebsocketError
from ._model.headers import MessageHeaders as MessageHeaders
from ._model.message import Message as Message
from ._model.message import MessageMetrics as MessageMetrics
from ._model.signals import Signal as Signal
from ._model.tls_password import TlsPassword as TlsPassword
from ._pool.state_policy import PoolStatistics as PoolStatistics
from ._session.session import DEFAULT as DEFAULT
from ._session.session import SendContext as SendContext
from ._session.session import Session as Session
from ._transport.connect import RemoteAddress as RemoteAddress
from ._transport.connect import UnixSocketAddress as UnixSocketAddress
from ._transport.proxy_resolver_policy import ProxyResolver as ProxyResolver
from ._transport.proxy_resolver_policy import ProxyURI as ProxyURI
from ._transport.proxy_resolver_policy import SimpleProxyResolver as SimpleProxyResolver
from ._transport.tls import TlsDatabase as TlsDatabase
from ._version import __version__ as __version__

# The rest loads on first use (__getattr__ below, PEP 562): a program that
# sends plain HTTP/1.1 requests never pays for WebSocket (wsproto), the cache's
# disk storage (sqlite3), cookies and the public suffix list, NTLM (pyspnego)...
# The imports here are for type checkers and the docs only.
if TYPE_CHECKING:
    from ._drivers.websocket import WebsocketConnection as WebsocketConnection
    from ._features.auth.challenge_policy import Challenge as Challenge
    from ._features.auth.ntlm_policy import AuthNegotiate as AuthNegotiate
    from ._features.auth.ntlm_policy import AuthNTLM as AuthNTLM
    from ._features.cache.cache import Cache as Cache
    from ._features.cache.entry_policy import CacheType as CacheType
    from ._features.cookies.cookie_policy import Cookie as Cookie
    from ._features.cookies.cookie_policy import CookieJarAcceptPolicy as CookieJarAcceptPolicy
    from ._features.cookies.cookie_policy import SameSitePolicy as SameSitePolicy
    from ._features.cookies.jar import CookieJar as CookieJar
    from ._features.cookies.stores import CookieJarDB as CookieJarDB
    from ._features.cookies.stores import CookieJarText as CookieJarText
    from ._features.hsts.enforcer import HSTSEnforcer as HSTSEnforcer
    from ._features.hsts.enforcer import HSTSEnforcerDB as HSTSEnforcerDB
    from ._features.hsts.hsts_policy import HSTSPolicy as HSTSPolicy
    from ._features.logger.logger import Logger as Logger
    from ._features.retry.retry import Retry as Retry
    from ._features.sniffer.sniffer import ContentSniffer as ContentSniffer
    from ._features.websocket.deflate_policy import (
        WebsocketExtensionDeflate as WebsocketExtensionDeflate,
    )
    from ._model.compression_dictionary import CompressionDictionary as CompressionDictionary
    from ._model.multipart import Multipart as Multipart
    from ._model.multipart_stream import MultipartInputStream as MultipartInputStream
    from ._model.tld import tld_domain_is_public_suffix as tld_domain_is_public_suffix
    from ._model.tld import tld_get_base_domain as tld_get_base_domain
    from ._model.websocket_extension import WebsocketExtension as WebsocketExtension
    from ._session.websocket_connect import WebsocketConnectContext as WebsocketConnectContext

#: The names loaded on first use, and the module (relative to the package)
#: that defines each. Every one is also in ``__all__`` and in the
#: ``TYPE_CHECKING`` imports above; its class carries ``@public``
#: (``_model/public.py``) instead of going through the loop below.
_LAZY: dict[str, str] = {
    "WebsocketConnection": "._drivers.websocket",
    "WebsocketConnectContext": "._session.websocket_connect",
    "WebsocketExtension": "._model.websocket_extension",
    "WebsocketExtensionDeflate": "._features.websocket.deflate_policy",
    "Challenge": "._features.auth.challenge_policy",
    "AuthNTLM": "._features.auth.ntlm_policy",
    "AuthNegotiate": "._features.auth.ntlm_policy",
    "Cache": "._features.cache.cache",
    "CacheType": "._features.cache.entry_policy",
    "Cookie": "._features.cookies.cookie_policy",
    "CookieJar": "._features.cookies.jar",
    "CookieJarAcceptPolicy": "._features.cookies.cookie_policy",
    "SameSitePolicy": "._features.cookies.cookie_policy",
    "CookieJarDB": "._features.cookies.stores",
    "CookieJarText": "._features.cookies.stores",
    "HSTSEnforcer": "._features.hsts.enforcer",
    "HSTSEnforcerDB": "._features.hsts.enforcer",
    "HSTSPolicy": "._features.hsts.hsts_policy",
    "Logger": "._features.logger.logger",
    "Retry": "._features.retry.retry",
    "ContentSniffer": "._features.sniffer.sniffer",
    "CompressionDictionary": "._model.compression_dictionary",
    "Multipart": "._model.multipart",
    "MultipartInputStream": "._model.multipart_stream",
    "tld_get_base_domain": "._model.tld",
    "tld_domain_is_public_suffix": "._model.tld",
}

__all__ = [
    "__version__",
    # sessions and messages
    "Session",
    "SendContext",
    "DEFAULT",
    "Message",
    "MessageHeaders",
    "MessageMetrics",
    "Multipart",
    "MultipartInputStream",
    "InputStream",
    "RequestBody",
    "Cancellable",
    "Signal",
    "SessionFeature",
    "PoolStatistics",
    # WebSockets
    "WebsocketConnection",
    "WebsocketConnectContext",
    "WebsocketExtension",
    "WebsocketExtensionDeflate",
    "WebsocketExtensionManager",
    # features
    "AuthManager",
    "Auth",
    "AuthBasic",
    "AuthDigest",
    "AuthNTLM",
    "AuthNegotiate",
    "Challenge",
    "Cookie",
    "CookieJar",
    "CookieJarAcceptPolicy",
    "CookieJarDB",
    "Cache",
    "CacheResult",
    "CacheType",
    "CookieJarText",
    "SameSitePolicy",
    "HSTSEnforcer",
    "HSTSEnforcerDB",
    "HSTSPolicy",
    "ContentDecoder",
    "CompressionDictionary",
    "ContentSniffer",
    "Logger",
    "LoggerLogLevel",
    "Retry",
    # addresses, proxies and TLS
    "ProxyResolver",
    "SimpleProxyResolver",
    "ProxyURI",
    "RemoteAddress",
    "UnixSocketAddress",
    "TlsDatabase",
    "TlsCertificate",
    "TlsInteraction",
    "TlsPassword",
    # enumerations
    "HTTPVersion",
    "MessageFlags",
    "MessagePriority",
    "NetworkEvent",
    "SessionErrorCode",
    "SpliceFlags",
    "TLDErrorCode",
    "TlsCertificateFlags",
    "TlsPasswordFlags",
    "WebsocketCloseCode",
    "WebsocketDataType",
    "WebsocketErrorCode",
    "WebsocketState",
    # errors
    "Error",
    "SessionError",
    "ParsingError",
    "EncodingError",
    "TooManyRedirects",
    "TooManyRestarts",
    "RedirectNoLocation",
    "RedirectBadUri",
    "MessageAlreadyInQueue",
    "ConnectError",
    "NetworkError",
    "IncompleteBody",
    "BodyTooLarge",
    "HTTPStatusError",
    "TimeoutError",
    "TlsError",
    "RequestCancelled",
    "WebsocketError",
    "WebsocketClosed",
    "TLDError",
    # public suffixes
    "tld_get_base_domain",
    "tld_domain_is_public_suffix",
]

for _name in __all__:
    if _name in _LAZY:
        continue
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("anysoup."):
        _obj.__module__ = "anysoup"
del _name, _obj


def __getattr__(name: str) -> Any:
    """Load a public name of ``_LAZY`` (or ``anysoup.blocking``) on first use."""
    import importlib

    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value  # later lookups find it without coming here
        return value
    # anysoup.blocking on first use: programs that are async never load it.
    if name == "blocking":
        return importlib.import_module(".blocking", __name__)
    raise AttributeError(f"module 'anysoup' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names, with those not loaded yet (``dir()``, completion)."""
    return sorted({*globals(), *_LAZY})
