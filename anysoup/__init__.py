"""anysoup: libsoup's Session for structured concurrency, on Trio and asyncio.

Everything public is importable from here; the modules behind it are private.
"""

from ._auth import Auth as Auth
from ._auth import AuthBasic as AuthBasic
from ._auth_challenge import Challenge as Challenge
from ._auth_digest import AuthDigest as AuthDigest
from ._auth_manager import AuthManager as AuthManager
from ._auth_ntlm import AuthNegotiate as AuthNegotiate
from ._auth_ntlm import AuthNTLM as AuthNTLM
from ._body import InputStream as InputStream
from ._body import RequestBody as RequestBody
from ._cancellable import Cancellable as Cancellable
from ._certificate import TlsCertificate as TlsCertificate
from ._certificate import TlsInteraction as TlsInteraction
from ._connect import RemoteAddress as RemoteAddress
from ._connect import UnixSocketAddress as UnixSocketAddress
from ._cookie_stores import CookieJarDB as CookieJarDB
from ._cookie_stores import CookieJarText as CookieJarText
from ._cookies import Cookie as Cookie
from ._cookies import CookieJar as CookieJar
from ._cookies import CookieJarAcceptPolicy as CookieJarAcceptPolicy
from ._cookies import SameSitePolicy as SameSitePolicy
from ._decoder import ContentDecoder as ContentDecoder
from ._enums import HTTPVersion as HTTPVersion
from ._enums import LoggerLogLevel as LoggerLogLevel
from ._enums import MessageFlags as MessageFlags
from ._enums import MessagePriority as MessagePriority
from ._enums import NetworkEvent as NetworkEvent
from ._enums import SessionErrorCode as SessionErrorCode
from ._enums import SpliceFlags as SpliceFlags
from ._enums import TlsCertificateFlags as TlsCertificateFlags
from ._enums import WebsocketCloseCode as WebsocketCloseCode
from ._enums import WebsocketDataType as WebsocketDataType
from ._enums import WebsocketErrorCode as WebsocketErrorCode
from ._enums import WebsocketState as WebsocketState
from ._exceptions import ConnectError as ConnectError
from ._exceptions import EncodingError as EncodingError
from ._exceptions import Error as Error
from ._exceptions import IncompleteBody as IncompleteBody
from ._exceptions import MessageAlreadyInQueue as MessageAlreadyInQueue
from ._exceptions import NetworkError as NetworkError
from ._exceptions import ParsingError as ParsingError
from ._exceptions import RedirectBadUri as RedirectBadUri
from ._exceptions import RedirectNoLocation as RedirectNoLocation
from ._exceptions import RequestCancelled as RequestCancelled
from ._exceptions import SessionError as SessionError
from ._exceptions import TimeoutError as TimeoutError
from ._exceptions import TlsError as TlsError
from ._exceptions import TooManyRedirects as TooManyRedirects
from ._exceptions import TooManyRestarts as TooManyRestarts
from ._exceptions import WebsocketClosed as WebsocketClosed
from ._exceptions import WebsocketError as WebsocketError
from ._feature import SessionFeature as SessionFeature
from ._headers import MessageHeaders as MessageHeaders
from ._hsts import HSTSEnforcer as HSTSEnforcer
from ._hsts import HSTSEnforcerDB as HSTSEnforcerDB
from ._hsts_policy import HSTSPolicy as HSTSPolicy
from ._logger import Logger as Logger
from ._message import Message as Message
from ._message import MessageMetrics as MessageMetrics
from ._multipart import Multipart as Multipart
from ._pool_state import PoolStatistics as PoolStatistics
from ._proxy_resolver import ProxyResolver as ProxyResolver
from ._proxy_resolver import ProxyURI as ProxyURI
from ._proxy_resolver import SimpleProxyResolver as SimpleProxyResolver
from ._session import DEFAULT as DEFAULT
from ._session import SendContext as SendContext
from ._session import Session as Session
from ._signals import Signal as Signal
from ._sniffer import ContentSniffer as ContentSniffer
from ._tls import TlsDatabase as TlsDatabase
from ._version import __version__ as __version__
from ._websocket import WebsocketConnection as WebsocketConnection
from ._websocket_connect import WebsocketConnectContext as WebsocketConnectContext
from ._websocket_extensions import WebsocketExtension as WebsocketExtension
from ._websocket_extensions import WebsocketExtensionDeflate as WebsocketExtensionDeflate
from ._websocket_extensions import WebsocketExtensionManager as WebsocketExtensionManager

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
    "CookieJarText",
    "SameSitePolicy",
    "HSTSEnforcer",
    "HSTSEnforcerDB",
    "HSTSPolicy",
    "ContentDecoder",
    "ContentSniffer",
    "Logger",
    "LoggerLogLevel",
    # addresses, proxies and TLS
    "ProxyResolver",
    "SimpleProxyResolver",
    "ProxyURI",
    "RemoteAddress",
    "UnixSocketAddress",
    "TlsDatabase",
    "TlsCertificate",
    "TlsInteraction",
    # enumerations
    "HTTPVersion",
    "MessageFlags",
    "MessagePriority",
    "NetworkEvent",
    "SessionErrorCode",
    "SpliceFlags",
    "TlsCertificateFlags",
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
    "TimeoutError",
    "TlsError",
    "RequestCancelled",
    "WebsocketError",
    "WebsocketClosed",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("anysoup."):
        _obj.__module__ = "anysoup"
del _name, _obj
