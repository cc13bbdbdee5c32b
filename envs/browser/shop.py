"""`webgrove/WebShopBrowser-v0`: the shop site on 127.0.0.1, driven in Chromium.

Same catalog, goals, splits and reward as `webgrove/WebShop-v0`: the site is
`envs/shop/server.py` over the same engine, and the reward is the engine's
purchase score for the session. `text_action_to_browser` maps a text-env action
(`search[q]`, `click[label]`) to the browser action on the matching element, so
text-env agents (e.g. the oracle) can drive the browser env.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from webgrove.envs.browser.axtree import parse_axtree
from webgrove.envs.browser.env import BrowserEnv
from webgrove.envs.browser.task import Task

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from webgrove.envs.browser.chromium import Chromium
    from webgrove.envs.shop.server import ShopServer

SEARCH_BOX_NAME = "Search query"
_TEXT_ACTION = re.compile(r"^\s*(search|click)\[(.*)\]\s*$", re.IGNORECASE | re.DOTALL)


class ShopTask(Task):
    """A shop goal in a fresh session of a shop server.

    Args:
        split: "train" or "test" goals.
        num_products, catalog_seed: the synthetic catalog (as `webgrove/WebShop-v0`).
        data_dir, goals: the original WebShop files instead ("synthetic" or "human" goals).
        server: a running `ShopServer` over the same catalog to share; default: the
            task starts its own on 127.0.0.1 (closed with the task).
    """

    viewport = (1280, 720)

    def __init__(self, split: str = "train", num_products: int | None = 1000, catalog_seed: int = 0,
                 data_dir: str | None = None, goals: str = "synthetic",
                 server: ShopServer | None = None) -> None:
        from webgrove.envs.shop.engine import get_engine
        from webgrove.envs.shop.server import ShopServer

        if server is None:
            engine = get_engine(data_dir=data_dir, goals=goals, num_products=num_products,
                                catalog_seed=catalog_seed)
            server = ShopServer(engine, split=split)
            self._own_server = True
        else:
            if server.split != split:
                raise ValueError(f"the shared server serves split {server.split!r}, not {split!r}")
            self._own_server = False
        self.server = server
        self.engine = server.engine
        self.catalog = self.engine.catalog
        self.split = split
        self.goals = server.goals
        self.allowed_origins = (server.url,)
        self._session: str | None = None
        self.goal_id = 0

    def episode_options(self, options: dict[str, Any], np_random: np.random.Generator) -> dict[str, Any]:
        """Pick the goal as `webgrove/WebShop-v0` does: options["goal_id"], else a seeded draw."""
        if "goal_id" in options:
            goal_id = int(options["goal_id"])
            if not 0 <= goal_id < len(self.goals):
                raise ValueError(f"goal_id {goal_id} out of range for split {self.split!r} "
                                 f"({len(self.goals)} goals)")
        else:
            goal_id = int(np_random.integers(len(self.goals)))
        return {**options, "goal_id": goal_id}

    @property
    def goal(self):
        """The current goal (a `Goal`, as `ShopEnv.goal`)."""
        return self.goals[self.goal_id]

    def setup(self, page: Page, *, seed: int, options: dict[str, Any]) -> str:
        from webgrove.envs.shop.server import SESSION_COOKIE

        self.goal_id = int(options["goal_id"])
        self._session = self.server.new_session(self.goal_id)
        page.context.add_cookies([{"name": SESSION_COOKIE, "value": self._session,
                                   "url": self.server.url}])
        page.goto(self.server.url, wait_until="domcontentloaded")
        return self.goal.instruction

    def validate(self, page: Page, answer: str | None) -> tuple[float, bool, dict[str, Any]]:
        session = self.server.session(self._session)
        if session is None or session.purchase is None:
            return 0.0, False, {}
        return session.purchase.reward, True, dict(session.purchase.reward_info)

    def teardown(self) -> None:
        if self._session is not None:
            self.server.end_session(self._session)
            self._session = None

    def close(self) -> None:
        if self._own_server:
            self.server.close()


class WebShopBrowserEnv(BrowserEnv):
    """The shop site in Chromium (`webgrove/WebShopBrowser-v0`).

    Goals, splits and reward are those of `webgrove/WebShop-v0` (same `split`,
    `num_products`, `catalog_seed`, `data_dir`, `goals` arguments; `reset(seed=s)` picks
    the same goal as the text env, `options={"goal_id": i}` a given one). The reward is
    WebShop's, earned on the purchase page; `info["reward_info"]` holds its components.
    See `BrowserEnv` for spaces, actions and info.

    Args:
        split, num_products, catalog_seed, data_dir, goals, server: as in `ShopTask`.
        screenshot, html, dom_text, viewport, action_timeout_s, navigation_timeout_s,
        browser, headless, render_mode: as in `BrowserEnv`.
    """

    def __init__(
        self,
        split: str = "train",
        num_products: int | None = 1000,
        catalog_seed: int = 0,
        data_dir: str | None = None,
        goals: str = "synthetic",
        *,
        server: ShopServer | None = None,
        screenshot: bool = False,
        html: bool = False,
        dom_text: bool = False,
        viewport: tuple[int, int] | None = None,
        action_timeout_s: float = 5.0,
        navigation_timeout_s: float = 15.0,
        browser: Chromium | None = None,
        headless: bool = True,
        render_mode: str | None = None,
    ) -> None:
        task = ShopTask(split, num_products, catalog_seed, data_dir, goals, server)
        super().__init__(
            task, screenshot=screenshot, html=html, dom_text=dom_text, viewport=viewport,
            action_timeout_s=action_timeout_s, navigation_timeout_s=navigation_timeout_s,
            browser=browser, headless=headless, render_mode=render_mode)

    @property
    def goal(self):
        """The current goal as a `Goal` (what scripted shop agents read)."""
        return self.task.goal

    @property
    def catalog(self):
        return self.task.catalog


def text_action_to_browser(action: str, axtree: str) -> str:
    """The browser action for a `webgrove/WebShop-v0` action on this page.

    `search[q]` types q into the search box and presses Enter; `click[label]` clicks
    the link or button whose name is the label (case-insensitive, as the text env).
    Raises LookupError if the page has no such element, ValueError for other strings.
    """
    m = _TEXT_ACTION.match(action)
    if m is None:
        raise ValueError(f"not a shop action: {action!r}")
    verb, arg = m[1].lower(), m[2].strip()
    nodes = parse_axtree(axtree)
    if verb == "search":
        for n in nodes:
            if n.ref and n.role in ("textbox", "searchbox") and n.name == SEARCH_BOX_NAME:
                return f"type [{n.ref}] [{arg}] [enter]"
        raise LookupError("no search box on this page")
    label = arg.lower()
    for n in nodes:
        if n.ref and n.role in ("link", "button") and n.name.lower() == label:
            return f"click [{n.ref}]"
    raise LookupError(f"no link or button {arg!r} on this page")
