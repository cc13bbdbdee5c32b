"""`webgrove/WebShopBrowser-v0`: the shop site on 127.0.0.1, driven in Chromium.

Same catalog, goals, splits and reward as `webgrove/WebShop-v0`: the site is
`envs/shop/server.py` over the same engine, and the reward is the engine's
purchase score for the session. The env takes the text env's actions too
(`search[q]`, `click[label]`, see `envs/shop/actions.py`): `text_action_to_browser`
turns each into the browser action on the matching element, so every shop agent
(scripted, trained on the text env) drives the browser shop unchanged.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from webgrove.envs.browser.axtree import parse_axtree
from webgrove.envs.browser.task import ServedSiteTask
from webgrove.envs.shop.actions import SEARCH, InvalidAction, is_shop_action, parse_action

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from webgrove.envs.shop.server import ShopServer

SEARCH_BOX_NAME = "Search query"
ACTION_LISTS = ("text", "refs")


class ShopTask(ServedSiteTask):
    """A shop goal in a fresh session of a shop server (`webgrove/WebShopBrowser-v0`).

    Goals, splits and reward are those of `webgrove/WebShop-v0`: `reset(seed=s)` picks
    the same goal as the text env, `options={"goal_id": i}` a given one. The reward is
    WebShop's, earned on the purchase page; `info["reward_info"]` holds its components.
    Actions: the browser grammar (`click [e12]`) or the text env's (`click[buy now]`).

    Args:
        split: "train" or "test" goals.
        num_products, catalog_seed: the synthetic catalog (as `webgrove/WebShop-v0`).
        data_dir, goals: the original WebShop files instead ("synthetic" or "human" goals).
        server: a running `ShopServer` over the same catalog to share; default: the
            task starts its own on 127.0.0.1 (closed with the task).
        available_actions: what `info["available_actions"]` lists: "text" (default)
            the text env's actions for the page shown, "refs" the element refs.
    """

    viewport = (1280, 720)
    session_cookie = "webgrove_session"  # envs/shop/server.py's SESSION_COOKIE (not imported: heavy)

    def __init__(self, split: str = "train", num_products: int | None = 1000, catalog_seed: int = 0,
                 data_dir: str | None = None, goals: str = "synthetic",
                 server: ShopServer | None = None, available_actions: str = "text") -> None:
        from webgrove.envs.shop.engine import get_engine
        from webgrove.envs.shop.server import ShopServer

        if available_actions not in ACTION_LISTS:
            raise ValueError(f"available_actions must be one of {ACTION_LISTS}, not {available_actions!r}")
        server = self._attach(server, split, lambda: ShopServer(get_engine(
            data_dir=data_dir, goals=goals, num_products=num_products, catalog_seed=catalog_seed), split=split))
        self.engine = server.engine
        self.catalog = self.engine.catalog
        self.split = split
        self.goals = server.goals
        self.allowed_origins = (server.url,)
        self.action_list = available_actions
        self._session: str | None = None
        self.goal_id = 0

    def episode_options(self, options: dict[str, Any], np_random: np.random.Generator) -> dict[str, Any]:
        """Pick the goal as `webgrove/WebShop-v0` does: options["goal_id"], else a seeded draw."""
        from webgrove.envs.shop.env import pick_goal_id

        return {**options, "goal_id": pick_goal_id(options, len(self.goals), self.split, np_random)}

    # -- forking (BrowserEnv.get_state / set_state, see envs/browser/fork.py) ----------

    def save_site(self, page: Page) -> dict[str, Any] | None:
        """A copy of the session (its purchase and last page state); None when the page
        is not a shop page or the session is gone. Shop pages are GETs named by their URL,
        so one navigation rebuilds any of them."""
        session = self.server.session(self._session)
        url = urlsplit(page.url)
        if session is None or f"{url.scheme}://{url.netloc}/" != self.server.url:
            return None
        return {"goal_id": session.goal_id, "purchase": copy.deepcopy(session.purchase),
                "state": copy.deepcopy(session.state)}

    def load_site(self, page: Page, site: dict[str, Any], *, seed: int, options: dict[str, Any]) -> str:
        """A new session holding a copy of `site` (no navigation); returns the goal."""
        self.goal_id = int(options["goal_id"])
        if site["goal_id"] != self.goal_id:
            raise ValueError(f"the fork is of goal {site['goal_id']}, not {self.goal_id}")
        sid = self.server.new_session(self.goal_id)
        session = self.server.session(sid)
        session.purchase, session.state = copy.deepcopy(site["purchase"]), copy.deepcopy(site["state"])
        self._use_session(page, sid)
        return self.goal.instruction

    def validate(self, page: Page, answer: str | None) -> tuple[float, bool, dict[str, Any]]:
        session = self.server.session(self._session)
        if session is None or session.purchase is None:
            return 0.0, False, {}
        return session.purchase.reward, True, dict(session.purchase.reward_info)

    def translate_action(self, action: str, axtree: str) -> str:
        """Text-env actions become browser actions; browser actions pass unchanged."""
        return text_action_to_browser(action, axtree) if is_shop_action(action) else action

    def available_actions(self, url: str, refs: list[str], axtree: str = "") -> list[str]:
        if self.action_list == "refs":
            return refs
        from webgrove.envs.shop.pages import url_to_state

        parts = urlsplit(url)
        base = urlsplit(self.server.url)
        if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
            return []  # not a shop page (about:blank after a crash)
        try:
            state = url_to_state(self.engine, parts.path, dict(parse_qsl(parts.query)))
        except InvalidAction:
            return []
        return self.engine.available_actions(state)



def text_action_to_browser(action: str, axtree: str) -> str:
    """The browser action for a `webgrove/WebShop-v0` action on this page.

    `search[q]` types q into the search box and presses Enter; `click[label]` clicks
    the link or button whose name is the label (case-insensitive, as the text env).
    Raises LookupError if the page has no such element, ValueError for other strings.
    """
    verb, arg = parse_action(action)
    nodes = parse_axtree(axtree)
    if verb == SEARCH:
        for n in nodes:
            if n.ref and n.role in ("textbox", "searchbox") and n.name == SEARCH_BOX_NAME:
                return f"type [{n.ref}] [{arg}] [enter]"
        raise LookupError("no search box on this page")
    label = arg.lower()
    for n in nodes:
        if n.ref and n.role in ("link", "button") and n.name.lower() == label:
            return f"click [{n.ref}]"
    raise LookupError(f"no link or button {arg!r} on this page")
