"""Fixtures shared by the browser env tests."""
import pytest


@pytest.fixture(scope="module")
def chromium():
    """One Chromium per test module; the module is skipped with the install hint if none is found."""
    from envs.browser.chromium import BrowserLaunchError, Chromium, chromium_executable

    try:
        chromium_executable()
    except BrowserLaunchError as e:
        pytest.skip(str(e))
    with Chromium() as browser:
        yield browser
