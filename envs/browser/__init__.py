"""Live-browser environments (Playwright + Chromium). Importing this module is light.

Ids:
    webgrove/WebShopBrowser-v0   the shop served on 127.0.0.1, in Chromium
    webgrove/miniwob.<task>-v0   every MiniWoB++ task page of the `miniwob` package
    webgrove/Browser-v0          any start URL + goal + evaluator, allowed origins only

The env classes live in `webgrove.envs.browser.env` (BrowserEnv), `webgrove.envs.browser.miniwob`,
`webgrove.envs.browser.web` and `webgrove.envs.browser.shop`; Playwright is imported only when a
browser starts.
"""
from __future__ import annotations

from gymnasium.envs.registration import register, registry

WEBSHOP_MAX_STEPS = 15  # as webgrove/WebShop-v0


def register_browser_envs() -> None:
    """Register webgrove/WebShopBrowser-v0, webgrove/Browser-v0 and webgrove/miniwob.<task>-v0."""
    if "webgrove/Browser-v0" in registry:
        return
    register(id="webgrove/Browser-v0", entry_point="webgrove.envs.browser.web:WebBrowserEnv")
    register(id="webgrove/WebShopBrowser-v0", entry_point="webgrove.envs.browser.shop:WebShopBrowserEnv",
             max_episode_steps=WEBSHOP_MAX_STEPS)
    from webgrove.envs.browser.miniwob import miniwob_task_names  # file listing only; imports no browser

    for name in miniwob_task_names():
        register(id=f"webgrove/miniwob.{name}-v0", entry_point="webgrove.envs.browser.miniwob:MiniWoBEnv",
                 kwargs={"task_name": name})
