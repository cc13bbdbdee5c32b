"""Live-browser environments (Playwright + Chromium). Importing this module is light.

Ids, each one task factory run by the one `BrowserEnv` (registered with
`webgrove.envs.browser.registry.register_browser_task`):
    webgrove/WebShopBrowser-v0   the shop served on 127.0.0.1, in Chromium (`shop.ShopTask`)
    webgrove/miniwob.<task>-v0   every MiniWoB++ task page of the `miniwob` package (`miniwob.MiniWoBTask`)
    webgrove/Browser-v0          any start URL + goal + evaluator, allowed origins only (`web.WebTask`)

`gym.make(id, **kwargs)`: arguments named like `BrowserOptions` fields (headless,
viewport, timeouts, screenshot/html/dom_text) set the browser; the rest go to the task.
Playwright is imported only when a browser starts.
"""
from __future__ import annotations

from webgrove.envs.browser.registry import register_browser_task

WEBSHOP_MAX_STEPS = 15  # as webgrove/WebShop-v0


def register_browser_envs() -> None:
    """Register webgrove/WebShopBrowser-v0, webgrove/Browser-v0 and webgrove/miniwob.<task>-v0."""
    register_browser_task("webgrove/Browser-v0", "webgrove.envs.browser.web:WebTask")
    register_browser_task("webgrove/WebShopBrowser-v0", "webgrove.envs.browser.shop:ShopTask",
                          max_episode_steps=WEBSHOP_MAX_STEPS)
    from webgrove.envs.browser.miniwob import miniwob_task_names  # file listing only; imports no browser

    for name in miniwob_task_names():
        register_browser_task(f"webgrove/miniwob.{name}-v0", "webgrove.envs.browser.miniwob:MiniWoBTask",
                              task_kwargs={"task_name": name})
