"""The settings of a :class:`~anysoup.Session`: properties, accessors, ``props``.

Kept apart from ``_session/session.py`` (sending, lifetime, features) so each reads
in one sitting. :class:`SessionProperties` is a base class of ``Session``.
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from .._model.arguments import positive, seconds
from .._model.certificate import TlsInteraction
from .._transport.connect import ConnectPlan, RemoteAddress, UnixSocketAddress
from .._transport.proxy_resolver_policy import ProxyResolver
from .._transport.tls import TlsDatabase
from .._version import __version__
from .locale_policy import accept_language_from_environ, user_agent_header

if TYPE_CHECKING:
    from .._pool.pool import Pool

__all__ = ["DEFAULT", "SessionProperties"]


class _Default:
    """The type of :data:`DEFAULT`."""

    _instance: _Default | None = None

    def __new__(cls) -> _Default:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "anysoup.DEFAULT"


#: "Use the default": for ``tls_database`` (the system store) and ``proxy_resolver``.
DEFAULT: Any = _Default()


class _Props:
    """``session.props.<name>``: the session's properties by name (PyGObject style)."""

    __slots__ = ("_session",)

    def __init__(self, session: SessionProperties) -> None:
        object.__setattr__(self, "_session", session)

    def __getattr__(self, name: str) -> Any:
        if name.replace("-", "_") not in SessionProperties._PROPERTIES:
            raise AttributeError(f"Session has no property {name!r}")
        return getattr(self._session, name.replace("-", "_"))

    def __setattr__(self, name: str, value: Any) -> None:
        if name.replace("-", "_") not in SessionProperties._PROPERTIES:
            raise AttributeError(f"Session has no property {name!r}")
        setattr(self._session, name.replace("-", "_"), value)

    def __dir__(self) -> list[str]:
        return list(SessionProperties._PROPERTIES)


class SessionProperties:
    """The properties of a session, each with libsoup's ``get_x()``/``set_x()``."""

    _PROPERTIES = (
        "accept_language",
        "accept_language_auto",
        "idle_timeout",
        "local_address",
        "max_conns",
        "max_conns_per_host",
        "proxy_resolver",
        "remote_connectable",
        "timeout",
        "tls_database",
        "tls_interaction",
        "user_agent",
    )

    # Set by Session.__init__.
    _pool: Pool
    _plans: dict[Hashable, tuple[Hashable, ConnectPlan]]
    _accept_language: str | None
    _accept_language_auto: bool
    _user_agent: str | None
    _user_agent_header: str | None
    _local_address: tuple[str, int] | None
    _remote_connectable: RemoteAddress | None
    _proxy_resolver: ProxyResolver | None
    _tls_interaction: TlsInteraction | None
    _tls_database: TlsDatabase | None
    _http2: bool

    # -- properties ------------------------------------------------------------

    @property
    def props(self) -> _Props:
        """The properties by name, as ``session.props.max_conns`` in PyGObject."""
        return _Props(self)

    @property
    def accept_language(self) -> str | None:
        """The ``Accept-Language`` header added to messages without one."""
        return self._accept_language

    @accept_language.setter
    def accept_language(self, value: str | None) -> None:
        self._accept_language = value
        self._accept_language_auto = False

    @property
    def accept_language_auto(self) -> bool:
        """Whether ``accept_language`` is built from the locale environment."""
        return self._accept_language_auto

    @accept_language_auto.setter
    def accept_language_auto(self, value: bool) -> None:
        if value:
            self._accept_language = accept_language_from_environ(os.environ)
        elif self._accept_language_auto:
            self._accept_language = None
        self._accept_language_auto = bool(value)

    @property
    def http2(self) -> bool:
        """Whether https connections offer HTTP/2 (ALPN ``h2``, then ``http/1.1``).

        False offers only ``http/1.1``. A changed value applies to new
        connections. Not a libsoup property (libsoup reads ``SOUP_FORCE_HTTP1``
        from the environment), so not in :attr:`props`.
        """
        return self._http2

    @http2.setter
    def http2(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"http2: expected a bool, got {value!r}")
        self._http2 = value
        self._plans.clear()

    @property
    def idle_timeout(self) -> float:
        """How long an idle connection is kept, in seconds; 0 keeps it forever."""
        return self._pool.state.idle_timeout

    @idle_timeout.setter
    def idle_timeout(self, value: float) -> None:
        self._pool.state.idle_timeout = seconds("idle_timeout", value)

    @property
    def local_address(self) -> tuple[str, int] | None:
        """The local ``(host, port)`` new TCP connections are bound to (port 0: any)."""
        return self._local_address

    @local_address.setter
    def local_address(self, value: tuple[str, int] | None) -> None:
        if isinstance(value, UnixSocketAddress):
            # One path can be bound by one socket at a time, and a pool has many.
            raise TypeError(
                "local_address: a Unix socket path can't be shared by pooled connections; "
                "give a (host, port) for TCP"
            )
        if value is not None:
            host, port = value
            value = (str(host), int(port))
        self._local_address = value
        self._plans.clear()

    @property
    def max_conns(self) -> int:
        """Connections open at once, all hosts together."""
        return self._pool.state.max_conns

    @max_conns.setter
    def max_conns(self, value: int) -> None:
        self._pool.state.set_limits(max_conns=positive("max_conns", value))

    @property
    def max_conns_per_host(self) -> int:
        """Connections open at once to one host."""
        return self._pool.state.max_conns_per_host

    @max_conns_per_host.setter
    def max_conns_per_host(self, value: int) -> None:
        self._pool.state.set_limits(max_conns_per_host=positive("max_conns_per_host", value))

    @property
    def proxy_resolver(self) -> ProxyResolver | None:
        """The :class:`ProxyResolver` in use, or None (no proxies).

        Setting :data:`DEFAULT` reads the environment (``http_proxy``,
        ``https_proxy``, ``all_proxy``, ``no_proxy``) at that moment.
        """
        return self._proxy_resolver

    @proxy_resolver.setter
    def proxy_resolver(self, value: ProxyResolver | None) -> None:
        if value is DEFAULT:
            value = ProxyResolver.from_environment()
        elif value is not None and not callable(getattr(value, "lookup", None)):
            raise TypeError(f"proxy_resolver: {value!r} has no async lookup(uri) method")
        self._proxy_resolver = value
        self._plans.clear()

    @property
    def remote_connectable(self) -> RemoteAddress | None:
        """Where every connection goes, whatever the URI's host, or None."""
        return self._remote_connectable

    @remote_connectable.setter
    def remote_connectable(self, value: RemoteAddress | None) -> None:
        if value is not None and not isinstance(value, UnixSocketAddress):
            host, port = value
            value = (str(host), int(port))
        self._remote_connectable = value
        self._plans.clear()

    @property
    def timeout(self) -> float:
        """How long I/O may stall before :class:`anysoup.TimeoutError`; 0 means no limit."""
        return self._pool.timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        self._pool.timeout = seconds("timeout", value)

    @property
    def tls_database(self) -> TlsDatabase | None:
        """The database validating certificates; None means every certificate fails."""
        if self._tls_database is DEFAULT:
            self._tls_database = TlsDatabase.system()
        return self._tls_database

    @tls_database.setter
    def tls_database(self, value: TlsDatabase | None) -> None:
        if value is not DEFAULT and value is not None and not isinstance(value, TlsDatabase):
            raise TypeError(f"tls_database: expected TlsDatabase or None, got {value!r}")
        self._tls_database = value
        self._plans.clear()

    @property
    def tls_interaction(self) -> TlsInteraction | None:
        """What gives client certificates to https connections, or None for none."""
        return self._tls_interaction

    @tls_interaction.setter
    def tls_interaction(self, value: TlsInteraction | None) -> None:
        if value is not None and not isinstance(value, TlsInteraction):
            raise TypeError(f"tls_interaction: expected TlsInteraction or None, got {value!r}")
        self._tls_interaction = value

    @property
    def user_agent(self) -> str | None:
        """The ``User-Agent`` setting (see the class docs for ``""`` and a trailing space)."""
        return self._user_agent

    @user_agent.setter
    def user_agent(self, value: str | None) -> None:
        self._user_agent = value
        self._user_agent_header = user_agent_header(value, __version__)

    # -- libsoup's accessors: get_x()/set_x() for every property -----------------

    def get_accept_language(self) -> str | None:
        """Alias of :attr:`accept_language`."""
        return self.accept_language

    def set_accept_language(self, value: str | None) -> None:
        """Set :attr:`accept_language`."""
        self.accept_language = value

    def get_accept_language_auto(self) -> bool:
        """Alias of :attr:`accept_language_auto`."""
        return self.accept_language_auto

    def set_accept_language_auto(self, value: bool) -> None:
        """Set :attr:`accept_language_auto`."""
        self.accept_language_auto = value

    def get_idle_timeout(self) -> float:
        """Alias of :attr:`idle_timeout`."""
        return self.idle_timeout

    def set_idle_timeout(self, value: float) -> None:
        """Set :attr:`idle_timeout`."""
        self.idle_timeout = value

    def get_local_address(self) -> tuple[str, int] | None:
        """Alias of :attr:`local_address`."""
        return self.local_address

    def set_local_address(self, value: tuple[str, int] | None) -> None:
        """Set :attr:`local_address`."""
        self.local_address = value

    def get_max_conns(self) -> int:
        """Alias of :attr:`max_conns`."""
        return self.max_conns

    def set_max_conns(self, value: int) -> None:
        """Set :attr:`max_conns`."""
        self.max_conns = value

    def get_max_conns_per_host(self) -> int:
        """Alias of :attr:`max_conns_per_host`."""
        return self.max_conns_per_host

    def set_max_conns_per_host(self, value: int) -> None:
        """Set :attr:`max_conns_per_host`."""
        self.max_conns_per_host = value

    def get_proxy_resolver(self) -> ProxyResolver | None:
        """Alias of :attr:`proxy_resolver`."""
        return self.proxy_resolver

    def set_proxy_resolver(self, value: ProxyResolver | None) -> None:
        """Set :attr:`proxy_resolver`."""
        self.proxy_resolver = value

    def get_remote_connectable(self) -> RemoteAddress | None:
        """Alias of :attr:`remote_connectable`."""
        return self.remote_connectable

    def set_remote_connectable(self, value: RemoteAddress | None) -> None:
        """Set :attr:`remote_connectable`."""
        self.remote_connectable = value

    def get_timeout(self) -> float:
        """Alias of :attr:`timeout`."""
        return self.timeout

    def set_timeout(self, value: float) -> None:
        """Set :attr:`timeout`."""
        self.timeout = value

    def get_tls_database(self) -> TlsDatabase | None:
        """Alias of :attr:`tls_database`."""
        return self.tls_database

    def set_tls_database(self, value: TlsDatabase | None) -> None:
        """Set :attr:`tls_database`."""
        self.tls_database = value

    def get_tls_interaction(self) -> TlsInteraction | None:
        """Alias of :attr:`tls_interaction`."""
        return self.tls_interaction

    def set_tls_interaction(self, value: TlsInteraction | None) -> None:
        """Set :attr:`tls_interaction`."""
        self.tls_interaction = value

    def get_user_agent(self) -> str | None:
        """Alias of :attr:`user_agent`."""
        return self.user_agent

    def set_user_agent(self, value: str | None) -> None:
        """Set :attr:`user_agent`."""
        self.user_agent = value
