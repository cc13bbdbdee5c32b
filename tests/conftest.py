"""Suite-wide settings and fixtures: never touch a model hub; keep CPU threads modest."""
import os

import pytest

# Nothing in the suite may download weights or datasets.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")


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
