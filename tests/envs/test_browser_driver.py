"""A killed Playwright driver: the episode ends truncated and the next reset starts a new driver."""
import gymnasium as gym
import psutil
import pytest

import webgrove.envs  # noqa: F401  (registers the ids)
from webgrove.envs.browser.static_server import StaticServer

pytestmark = pytest.mark.browser


def _drivers():
    return [p for p in psutil.Process().children(recursive=True)
            if "run-driver" in " ".join(p.cmdline())]


def test_killing_the_driver_then_reset_starts_a_new_one(tmp_path):
    (tmp_path / "index.html").write_text("<button>Hi</button>")
    with StaticServer(tmp_path) as site, \
            gym.make("webgrove/Browser-v0", start_url=site.url + "index.html", goal="g") as env:
        env.reset(seed=0)
        old = _drivers()
        assert old, "no Playwright driver process found"
        for p in old:
            p.kill()
        psutil.wait_procs(old, timeout=5)
        *_, truncated, info = env.step("scroll [down]")
        assert truncated and info["error"]
        obs, info = env.reset(seed=0)
        assert 'button "Hi"' in obs["axtree"] and info["error"] is None
        assert {p.pid for p in _drivers()}.isdisjoint({p.pid for p in old})
        _, _, _, truncated, info = env.step("scroll [down]")
        assert not truncated and info["error"] is None
