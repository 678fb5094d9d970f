"""The pytest plugin: the ``anysoup_mock`` fixture and its marker.

Registered through the ``pytest11`` entry point, so it loads in every pytest
run where anysoup is installed: it imports only pytest until a test asks
for the fixture. The fixture is synchronous, which makes it work alike
under pytest-trio (``@pytest.mark.trio``) and under AnyIO's plugin
(``@pytest.mark.anyio``), and with plain sync tests using
:mod:`anysoup.blocking`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._router import MockRouter

__all__ = ["anysoup_mock"]

#: Whether the test itself (its "call" phase) failed: the teardown's checks
#: are then left out, so one mistake gives one report, not two.
_call_failed = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker that configures the fixture (for ``--strict-markers``)."""
    config.addinivalue_line(
        "markers",
        "anysoup_mock(assert_all_called=True, assert_all_mocked=True, base_url=None): "
        "the keywords of the anysoup_mock fixture's MockRouter",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Note whether the test's call phase failed."""
    report = yield
    if report.when == "call":
        item.stash[_call_failed] = report.failed
    return report


@pytest.fixture
def anysoup_mock(request: pytest.FixtureRequest) -> Generator[MockRouter, None, None]:
    """A :class:`~anysoup.testing.MockRouter`, active for the test.

    Every :class:`anysoup.Session` made during the test gets it (install it
    by hand in sessions made before). At teardown, if the test passed,
    routes never called and swallowed unmatched requests fail the test.
    ``@pytest.mark.anysoup_mock(...)`` passes keywords to the router.
    """
    from ._router import MockRouter

    marker = request.node.get_closest_marker("anysoup_mock")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    router = MockRouter(**options)
    router.__enter__()
    try:
        yield router
    finally:
        router._deactivate()
    if not request.node.stash.get(_call_failed, False):
        router._check_at_exit()
