"""The command's cookies: ``-b``, ``-c`` and a ``Cookie`` header given with ``-H``.

Theory of operation: as with curl, a ``-b`` value with an ``=`` in it is
cookies to send (``a=b; c=d``), any other is a cookies.txt file to read.
Reading a file, or ``-c FILE``, turns the cookie engine on: a
:class:`~anysoup.CookieJar` in memory, loaded from the ``-b`` files and from
the ``-c`` file (anysoup's ``-c`` reads its file too, so ``-c FILE`` alone
keeps a session going from one run to the next). At the end of the run the
jar is written whole to the ``-c`` file, session cookies included with
expiry 0, as curl's ``-c`` writes them (:class:`~anysoup.CookieJarText`
keeps session cookies in memory only, as libsoup does: the command does not
use it for that reason).

Cookies given on the command line are not the jar's: they are sent, never
stored, by :class:`CommandLineCookies`, a stage just inside the jar's (which
sets the ``Cookie`` header from its own cookies on every hop and would drop
them). They go with every request to the URL's own origin, redirects and
auth retries included (curl's "all outgoing requests"), never to another
origin (anysoup's redirect rule for a ``Cookie`` the program set).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from .._features.cookies.jar import CookieJar
from .._features.cookies.stores import _replace_file, format_cookies_txt, parse_cookies_txt
from .._features.feature import SessionFeature
from .status import EXIT_READ, EXIT_WRITE, Failure
from .streams import stdout_bytes

if TYPE_CHECKING:
    from yarl import URL

    from .._features.feature import CallNext
    from .._model.body import InputStream
    from .._model.message import Message

__all__ = ["CommandLineCookies", "cookie_strings", "load_jar", "save_jar"]


def cookie_strings(values: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Split ``-b`` values into cookie strings and file names (curl's ``=`` rule)."""
    strings = [value for value in values if "=" in value]
    files = [value for value in values if "=" not in value]
    return strings, files


def load_jar(files: list[str], jar_file: str | None) -> CookieJar | None:
    """The cookie engine: a jar holding the cookies of ``files`` and ``jar_file``.

    None when neither is given. A file that does not exist yet is skipped
    (curl's rule: the first run of ``-b jar -c jar`` has none).

    Raises:
        Failure: A file exists but can't be read (26).
    """
    if not files and jar_file is None:
        return None
    jar = CookieJar()
    readable = [(name, "-b") for name in files]
    if jar_file is not None and jar_file != "-":
        readable.append((jar_file, "-c"))
    for name, option in readable:
        try:
            with open(name, encoding="utf-8", errors="replace") as file:
                text = file.read()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise Failure(EXIT_READ, f"{option}: can't read {name!r}: {exc.strerror}") from None
        for cookie in parse_cookies_txt(text):
            if not cookie.is_expired():
                jar.add_cookie(cookie)
    return jar


def save_jar(jar: CookieJar, jar_file: str) -> None:
    """Write every cookie of ``jar``, session ones included, to ``jar_file`` (``-``: stdout).

    The file is replaced whole (a temporary file renamed over it) and is
    readable by its owner only: cookies are credentials.

    Raises:
        Failure: The file can't be written (23).
    """
    text = format_cookies_txt(
        (cookie for cookie in jar.all_cookies() if not cookie.is_expired()),
        session_cookies=True,
    )
    try:
        if jar_file == "-":
            out = stdout_bytes()
            out.write(text.encode())
            out.flush()
        else:
            _replace_file(jar_file, text)
    except OSError as exc:
        raise Failure(EXIT_WRITE, f"-c: can't write {jar_file!r}: {exc.strerror or exc}") from None


class CommandLineCookies(SessionFeature):
    """Sends the command line's cookies (``-b 'a=b'``, ``-H 'Cookie: …'``) to the URL's origin.

    Args:
        text: The cookies, ``a=b; c=d``.
        origin: Where they may go: the origin of the command's URL.
        after_jar: A jar runs before this stage and sets the ``Cookie``
            header of each hop itself: add to what it set. Without one, the
            header is this stage's alone.
    """

    chain_position: ClassVar[int | None] = (
        SessionFeature.POSITION_COOKIES + SessionFeature.POSITION_LOGGER
    ) // 2

    def __init__(self, text: str, origin: URL, *, after_jar: bool) -> None:
        self._text = text
        self._origin = origin
        self._after_jar = after_jar

    async def handle(self, msg: Message, call_next: CallNext) -> InputStream:
        """Put the cookies in this hop's ``Cookie`` header if it goes to the origin."""
        headers = msg.request_headers
        parts = [headers.get_one("Cookie") if self._after_jar else None]
        if msg.uri.origin() == self._origin:
            parts.append(self._text)
        value = "; ".join(part for part in parts if part)
        if value:
            headers.replace("Cookie", value)
        elif "Cookie" in headers:
            headers.remove("Cookie")
        return await call_next(msg)
