"""Fixtures shared by the browser env tests."""
import pytest


@pytest.fixture(scope="module")
def chromium():
    """One Chromium per test module. `make test` installs one, so a missing browser fails the
    tests with the install hint rather than skipping them."""
    from webgrove.envs.browser.chromium import BrowserLaunchError, Chromium, chromium_executable

    try:
        chromium_executable()
    except BrowserLaunchError as e:
        pytest.fail(str(e))
    with Chromium() as browser:
        yield browser
