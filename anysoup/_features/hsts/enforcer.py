"""HSTSEnforcer and HSTSEnforcerDB: HTTP Strict Transport Security (RFC 6797).

Theory of operation
-------------------
:class:`HSTSEnforcer` is a chain stage just inside the redirect stage
(``POSITION_HSTS``), so it sees every hop of a redirect. For each hop:

1. Before sending: if the URI's host is a *known HSTS host* (a valid policy
   for the host itself, or a valid includeSubDomains policy for a domain
   above it, RFC 6797 §8.2) an ``http://`` (``ws://``) URI is rewritten to
   ``https://`` (``wss://``) before any connection is made (§8.3), and the
   message's ``hsts_enforced`` signal fires. Any https request to a known
   host is marked strict: a certificate problem is a
   :class:`~anysoup.TlsError`, with no ``accept_certificate`` override
   (§8.4, §12.1).
2. After the response headers: a ``Strict-Transport-Security`` header is
   heeded only over TLS with a certificate that validated (§8.1: never over
   http, never from a connection a handler accepted despite errors). Only the
   first such header counts (§8.1); ``max-age=0`` removes the host's policy.

Host names and the header grammar are policy, in ``_features/hsts/hsts_policy.py``; this
module stores policies and does the I/O.

Policies live in two tables, as in libsoup: *host* policies (learned, or set
with an expiry) and *session* policies (set by the program, never expiring,
never persisted). Every change calls :meth:`HSTSEnforcer._policy_changed`
and emits ``changed``. :class:`HSTSEnforcerDB` turns changes into SQLite
writes in libsoup's ``soup_hsts_policies`` layout, done in a worker thread
by one writer task in the session's task group, each batch in a
transaction; closing the session waits for the last batch.
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from contextlib import closing
from typing import TYPE_CHECKING, ClassVar

import anyio
import anyio.to_thread

from ..._model.enums import TlsCertificateFlags
from ..._model.public import public
from ..._model.signals import SignalDescriptor, active
from ..._model.uri import is_secure
from ..feature import SessionFeature
from .hsts_policy import (
    HSTSPolicy,
    normalize_domain,
    superdomains,
    upgrade_uri,
    uri_domain,
)

if TYPE_CHECKING:
    from ..._model.body import InputStream
    from ..._model.message import Message
    from ..._model.signals import Signal
    from ..._session.session import Session
    from ..feature import CallNext

__all__ = ["HSTSEnforcer", "HSTSEnforcerDB", "HSTSPolicy"]

_log = logging.getLogger("anysoup.hsts")
_NO_ERRORS = TlsCertificateFlags.NO_FLAGS
_UTC = datetime.timezone.utc
#: How often expired host policies are swept out (libsoup sweeps on every change).
_SWEEP_INTERVAL = 60.0


@public
class HSTSEnforcer(SessionFeature):
    """Learns and enforces HSTS policies (libsoup's ``SoupHSTSEnforcer``).

    Not a default feature: add one with ``Session(features=[HSTSEnforcer()])``.
    Policies are kept in memory; :class:`HSTSEnforcerDB` keeps them in a file.
    See :doc:`hsts`.

    The ``changed`` signal ``(enforcer, old_policy, new_policy)`` fires for
    every change: ``old_policy`` is None for a new policy, ``new_policy`` is
    None for a removed one. It is emitted synchronously (the policy API is
    synchronous): connect plain functions; a coroutine handler is not awaited.
    """

    chain_position: ClassVar[int | None] = SessionFeature.POSITION_HSTS

    changed: SignalDescriptor[HSTSEnforcer] = SignalDescriptor(
        "``(enforcer, old_policy, new_policy)``: a policy was added, replaced or removed."
    )

    def __init__(self) -> None:
        self._signals: dict[str, Signal] | None = None
        self._host_policies: dict[str, HSTSPolicy] = {}
        self._session_policies: dict[str, HSTSPolicy] = {}
        self._next_sweep = 0.0

    # -- the chain stage -----------------------------------------------------

    async def handle(self, msg: Message, call_next: CallNext) -> InputStream:
        """Upgrade a known host's request to https, send, learn from the answer."""
        uri = msg.uri
        secure = is_secure(uri)
        if not secure and not self._host_policies and not self._session_policies:
            return await call_next(msg)  # nothing known, nothing to learn over http
        domain = uri_domain(uri)
        known = domain is not None and self._is_known_host(domain)
        if known and not secure:
            msg.set_uri(upgrade_uri(uri))
            secure = True
            signal = active(msg, "hsts_enforced")
            if signal is not None:
                await signal.emit()
        # §8.4, §12.1: no way to click through a certificate error for a known
        # host. Set on every hop: a redirect may lead to a host with no policy.
        msg._tls_strict = known
        stream = await call_next(msg)
        if (
            domain is not None
            and secure
            and msg.tls_protocol_version is not None
            and msg.tls_peer_certificate_errors == _NO_ERRORS
        ):
            policy = HSTSPolicy.new_from_response(msg)
            if policy is not None:
                self.set_policy(policy)
        return stream

    # -- libsoup's API -------------------------------------------------------

    def is_persistent(self) -> bool:
        """Whether policies outlive the session (False here; True for :class:`HSTSEnforcerDB`)."""
        return False

    def set_policy(self, policy: HSTSPolicy) -> None:
        """Add, replace or (for an expired policy) remove the policy for ``policy.domain``.

        A session policy goes to the session table and never expires; an
        expired host policy removes the host policy for its domain.

        Raises:
            TypeError: ``policy`` is not an :class:`HSTSPolicy`.
        """
        if not isinstance(policy, HSTSPolicy):
            raise TypeError(f"policy: expected HSTSPolicy, got {type(policy).__name__}")
        domain = policy.domain
        if policy.is_session_policy():
            old = self._session_policies.get(domain)
            self._session_policies[domain] = policy
            if old != policy:
                self._changed(old, policy)
            return
        if policy.is_expired():
            self._remove_host_policy(domain)
        else:
            old = self._host_policies.get(domain)
            self._host_policies[domain] = policy
            if old != policy:
                self._changed(old, policy)
        self._sweep()

    def set_session_policy(self, domain: str, include_subdomains: bool = False) -> None:
        """Set a session policy for ``domain``: enforced while the enforcer lives, never stored.

        Raises:
            ValueError: ``domain`` is an IP address or not a host name.
        """
        self.set_policy(HSTSPolicy.new_session_policy(domain, include_subdomains))

    def has_valid_policy(self, domain: str) -> bool:
        """Whether ``domain`` itself has a session policy or an unexpired host policy.

        Superdomains are not consulted (libsoup's rule); IP addresses and
        strings that are not host names have none.
        """
        key = normalize_domain(domain)
        return key is not None and self._valid(key) is not None

    def get_domains(self, session_policies: bool) -> list[str]:
        """The domains with an unexpired policy (and with a session policy, if asked)."""
        return [policy.domain for policy in self.get_policies(session_policies)]

    def get_policies(self, session_policies: bool) -> list[HSTSPolicy]:
        """The unexpired host policies (and the session policies, if asked)."""
        self._sweep(force=True)
        policies = list(self._host_policies.values())
        if session_policies:
            policies.extend(self._session_policies.values())
        return policies

    # -- internals -----------------------------------------------------------

    def _valid(self, domain: str) -> HSTSPolicy | None:
        """The session or unexpired host policy of ``domain``; an expired one is removed."""
        policy = self._session_policies.get(domain)
        if policy is not None:
            return policy
        policy = self._host_policies.get(domain)
        if policy is not None and policy.is_expired():
            self._remove_host_policy(domain)
            return None
        return policy

    def _is_known_host(self, domain: str) -> bool:
        """RFC 6797 §8.2: a congruent match first, then superdomains with includeSubDomains."""
        if self._valid(domain) is not None:
            return True
        for parent in superdomains(domain):
            session_policy = self._session_policies.get(parent)
            if session_policy is not None and session_policy.include_subdomains:
                return True
            host_policy = self._host_policies.get(parent)
            if (
                host_policy is not None
                and host_policy.include_subdomains
                and self._valid(parent) is not None
            ):
                return True
        return False

    def _remove_host_policy(self, domain: str) -> None:
        old = self._host_policies.pop(domain, None)
        if old is not None:
            self._changed(old, None)

    def _sweep(self, *, force: bool = False) -> None:
        """Remove expired host policies, at most once a minute unless forced."""
        now = time.monotonic()
        if not force and now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_INTERVAL
        for domain in [d for d, p in self._host_policies.items() if p.is_expired()]:
            self._remove_host_policy(domain)

    def _changed(self, old: HSTSPolicy | None, new: HSTSPolicy | None) -> None:
        self._policy_changed(old, new)
        signal = active(self, "changed")
        if signal is not None:
            signal.emit_sync(old, new)

    def _policy_changed(self, old: HSTSPolicy | None, new: HSTSPolicy | None) -> None:
        """Called for every change before ``changed`` fires (a hook for storage)."""

    def __repr__(self) -> str:
        return (
            f"<anysoup.{type(self).__name__} {len(self._host_policies)} host policies, "
            f"{len(self._session_policies)} session policies>"
        )


# -- persistence -----------------------------------------------------------------

# libsoup's soup-hsts-enforcer-db.c layout, so either library reads the other's file.
_CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS soup_hsts_policies (id INTEGER PRIMARY KEY, "
    "host TEXT UNIQUE, max_age INTEGER, expiry INTEGER, include_subdomains INTEGER)"
)
_QUERY_ALL = "SELECT id, host, max_age, expiry, include_subdomains FROM soup_hsts_policies"
_QUERY_INSERT = (
    "INSERT OR REPLACE INTO soup_hsts_policies VALUES("
    "(SELECT id FROM soup_hsts_policies WHERE host=?), ?, ?, ?, ?)"
)
_QUERY_DELETE = "DELETE FROM soup_hsts_policies WHERE host=?"


@public
class HSTSEnforcerDB(HSTSEnforcer):
    """An :class:`HSTSEnforcer` that keeps host policies in an SQLite file.

    The file has libsoup's ``soup_hsts_policies`` table, so libsoup's
    ``SoupHSTSEnforcerDB`` and anysoup share it. Policies are read when the
    enforcer is made (expired rows are skipped and later deleted); each change
    is written off the event loop, in a transaction, by a writer task of the
    session the enforcer belongs to, and the file is complete when the session
    has closed. Session policies are never written. Outside a session, call
    :meth:`flush` to write pending changes.

    Args:
        filename: The database file; made, with its table, if missing.

    Raises:
        ValueError: ``filename`` can't be opened or is not an SQLite database.
    """

    def __init__(self, filename: str | os.PathLike[str]) -> None:
        super().__init__()
        self._filename = os.fspath(filename)
        #: host → the policy to store, or None to delete its row: latest change wins.
        self._pending: dict[str, HSTSPolicy | None] = {}
        self._writing: anyio.Event | None = None
        self._writer_running = False
        self._load()

    @property
    def filename(self) -> str:
        """The database file."""
        return self._filename

    def is_persistent(self) -> bool:
        """True: host policies outlive the session."""
        return True

    async def handle(self, msg: Message, call_next: CallNext) -> InputStream:
        """As :meth:`HSTSEnforcer.handle`; also writes changes made before the session opened."""
        if self._pending and not self._writer_running:
            self._start_writer()
        return await super().handle(msg, call_next)

    async def session_closed(self, session: Session) -> None:
        """Write what is still pending, so the file is complete."""
        await self.flush()

    async def flush(self) -> None:
        """Write every pending change to the file (in a worker thread, one transaction)."""
        while self._pending:
            writing = self._writing
            if writing is not None:  # one batch at a time, in order
                await writing.wait()
                continue
            self._writing = writing = anyio.Event()
            batch = dict(self._pending)
            try:
                # Not abandoned on cancel: a batch that started is finished
                # (and, if cancelled, written again next time: writes are idempotent).
                await anyio.to_thread.run_sync(self._write, batch)
            finally:
                self._writing = None
                writing.set()
            for host, policy in batch.items():
                if host in self._pending and self._pending[host] is policy:
                    del self._pending[host]

    # -- internals -----------------------------------------------------------

    def _load(self) -> None:
        import sqlite3  # here: an HSTSEnforcer in memory never loads it

        try:
            with closing(sqlite3.connect(self._filename)) as db:
                db.execute(_CREATE_TABLE)
                db.commit()
                rows = db.execute(_QUERY_ALL).fetchall()
        except sqlite3.Error as exc:
            raise ValueError(f"HSTSEnforcerDB: can't use {self._filename!r}: {exc}") from exc
        now = time.time()
        for _, host, max_age, expiry, subdomains in rows:
            try:
                expiry_time, age = int(expiry), int(max_age)
                domain = normalize_domain(host)
                expires = datetime.datetime.fromtimestamp(expiry_time, _UTC)
            except (TypeError, ValueError, OverflowError, OSError):
                continue  # a row that no HSTS store wrote: leave it alone
            if domain is None:
                continue
            if now >= expiry_time:
                self._pending[host] = None  # expired: delete the row at the next write
                continue
            policy = HSTSPolicy.new_full(domain, max(age, 0), expires, str(subdomains) == "1")
            self._host_policies[domain] = policy
            if host != domain:  # libsoup stores U-labels: keep one row, ours
                self._pending[host] = None
                self._pending[domain] = policy

    def _policy_changed(self, old: HSTSPolicy | None, new: HSTSPolicy | None) -> None:
        policy = new if new is not None else old
        if policy is None or policy.is_session_policy():
            return  # session policies are never stored (libsoup)
        self._pending[policy.domain] = new
        self._start_writer()

    def _start_writer(self) -> None:
        session = self._session
        group = session._task_group if session is not None else None
        if group is None or self._writer_running:
            return  # written when the session opens and sends, or closes, or at flush()
        self._writer_running = True
        group.start_soon(self._run_writer, name="anysoup hsts writer")

    async def _run_writer(self) -> None:
        try:
            await self.flush()
        finally:
            self._writer_running = False

    def _write(self, batch: dict[str, HSTSPolicy | None]) -> None:
        """Apply ``batch`` in one transaction (in a worker thread)."""
        import sqlite3  # loaded already, by _load

        try:
            with closing(sqlite3.connect(self._filename)) as db:
                # libsoup's pragma: deleted hosts don't linger in free pages.
                db.execute("PRAGMA secure_delete = 1")
                db.execute(_CREATE_TABLE)
                with db:  # one transaction: all of the batch or none of it
                    for host, policy in batch.items():
                        if policy is None:
                            db.execute(_QUERY_DELETE, (host,))
                            continue
                        assert policy.expires is not None
                        db.execute(
                            _QUERY_INSERT,
                            (
                                host,
                                host,
                                policy.max_age,
                                int(policy.expires.timestamp()),
                                int(policy.include_subdomains),
                            ),
                        )
        except sqlite3.Error as exc:
            # libsoup warns and goes on: a full disk must not fail requests.
            _log.warning("HSTSEnforcerDB: writing %r failed: %s", self._filename, exc)
