"""Download several URLs at once into a directory, with a progress display.

    python examples/concurrent_downloads.py OUTDIR [URL ...] [--max-conns N] [--backend trio]

Without URLs it fetches https://pypi.org/simple/anyio/, …/trio/ and …/h11/. It draws progress
bars with rich (pip install 'anysoup[cli]') on a terminal, else prints a line per file.
"""

import argparse
import contextlib
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import anyio

import anysoup

DEFAULT_URLS = [f"https://pypi.org/simple/{name}/" for name in ("anyio", "trio", "h11")]


def make_progress() -> Any:
    """A rich Progress when rich is installed and stdout is a terminal, else None."""
    try:
        from rich.progress import Progress  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    return Progress() if sys.stdout.isatty() else None


async def download(
    session: anysoup.Session, msg: anysoup.Message, path: anyio.Path, bar: Any, errors: list[str]
) -> None:
    """Stream ``msg``'s response body into ``path``; add a line to ``errors`` if it fails."""
    try:
        async with session.send(msg) as body:  # returns once the headers are in
            if msg.status >= 400:  # an HTTP error status is an answer, not an exception
                errors.append(f"{msg.uri}: {msg.status} {msg.reason_phrase}")
                return
            task = bar and bar.add_task(path.name, total=msg.response_headers.get_content_length())
            async with await anyio.open_file(path, "wb") as file:  # writes run in a thread
                async for chunk in body:
                    await file.write(chunk)
                    if bar:
                        bar.update(task, advance=len(chunk))
        if not bar:
            print(f"{path}: {(await path.stat()).st_size} bytes", flush=True)
    except anysoup.Error as exc:  # caught here, so that the other downloads go on
        errors.append(f"{msg.uri}: {exc}")


async def main(outdir: Path, msgs: list[anysoup.Message], max_conns: int) -> list[str]:
    """Run every download in one task group; return the errors."""
    errors: list[str] = []
    # Requests beyond max_conns (in all) or max_conns_per_host (default 2) wait in a queue.
    async with anysoup.Session(max_conns=max_conns) as session:
        with (bar := make_progress()) or contextlib.nullcontext():
            async with anyio.create_task_group() as tg:  # waits for all it started
                for index, msg in enumerate(msgs):
                    # The index keeps names apart: ".../anyio/" is saved as "0-anyio".
                    name = f"{index}-{PurePosixPath(msg.uri.path).name or 'index.html'}"
                    tg.start_soon(download, session, msg, anyio.Path(outdir, name), bar, errors)
    return errors


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("urls", nargs="*", default=DEFAULT_URLS)
    parser.add_argument("--max-conns", type=int, default=4)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    try:
        msgs = [anysoup.Message("GET", url) for url in args.urls]
    except ValueError as exc:
        parser.error(str(exc))
    args.outdir.mkdir(parents=True, exist_ok=True)
    errors = anyio.run(main, args.outdir, msgs, args.max_conns, backend=args.backend)
    if errors:  # one line per failed download, then exit status 1
        sys.exit("\n".join(errors))
