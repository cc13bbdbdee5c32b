"""Tasks: what to do on a page and how well it was done. The env owns the browser.

A task sets up a fresh page at the start of an episode and returns the goal, then
judges the page after every step (BrowserGym's `setup(page) -> goal`,
`validate(page) -> reward, done, info`). Tasks hold no browser; they get the page.
Register a task as a Gymnasium id with `webgrove.envs.browser.registry.register_browser_task`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    from playwright.sync_api import Page


class BrowserTask(Protocol):
    """The contract between `BrowserEnv` and a task.

    Attributes:
        allowed_origins: what the page may load and `goto` may visit, listed explicitly:
            origins (`http://127.0.0.1:8080`, `https://example.com`) and files or folders
            (`file:///path/page.html`, `file:///path/folder/`). `file://` as a whole is
            refused; every request kind (documents, subresources, redirects, workers,
            WebSockets) is checked against this list.
        viewport: (width, height) in CSS pixels of the task's page.
    """

    allowed_origins: tuple[str, ...]
    viewport: tuple[int, int]

    def episode_options(self, options: dict[str, Any], np_random: np.random.Generator) -> dict[str, Any]:
        """Check and complete reset's options from the env's seeded RNG (e.g. draw a goal id).

        Called once per reset, before the page seed is drawn; the result is what
        `setup` receives and what `get_state` records. Raises ValueError for bad options.
        """
        ...

    def setup(self, page: Page, *, seed: int, options: dict[str, Any]) -> str:
        """Prepare the freshly opened page for an episode and return the goal.

        `seed` is drawn from the env's seeded RNG, `options` are reset's options
        (e.g. {"goal_id": 3}); the same pair must give the same page.
        """
        ...

    def validate(self, page: Page, answer: str | None) -> tuple[float, bool, dict[str, Any]]:
        """(reward, done, info) for the page after a step; `answer` is set after `stop`.

        `info` is reported as `info["reward_info"]` when the episode ends.
        """
        ...

    def translate_action(self, action: str, axtree: str) -> str:
        """The browser action for an action in the task's own vocabulary (e.g. the shop's
        `click[buy now]`); browser actions come back unchanged. Raises ValueError or
        LookupError when the action names nothing on the page (a no-op with an error)."""
        ...

    def available_actions(self, url: str, refs: list[str], axtree: str = "") -> list[str]:
        """`info["available_actions"]` on the page at `url` (its snapshot `axtree`): by
        default `refs`, the refs that can be acted on."""
        ...

    def teardown(self) -> None:
        """End the episode (called before the next setup and on close)."""
        ...

    def close(self) -> None:
        """Release what the task holds across episodes (servers, files)."""
        ...


class Task:
    """A base class with the optional parts of `BrowserTask` filled in.

    Subclasses set `allowed_origins` (required: there is no allow-everything default)
    and implement `setup` and `validate`.
    """

    allowed_origins: tuple[str, ...]
    viewport: tuple[int, int] = (1280, 720)

    def episode_options(self, options: dict[str, Any], np_random: np.random.Generator) -> dict[str, Any]:
        return dict(options)

    def setup(self, page: Page, *, seed: int, options: dict[str, Any]) -> str:
        raise NotImplementedError

    def validate(self, page: Page, answer: str | None) -> tuple[float, bool, dict[str, Any]]:
        raise NotImplementedError

    def translate_action(self, action: str, axtree: str) -> str:
        return action

    def available_actions(self, url: str, refs: list[str], axtree: str = "") -> list[str]:
        return refs

    def teardown(self) -> None:
        return None

    def close(self) -> None:
        return None


class ServedSiteTask(Task):
    """A base for tasks on a site webgrove serves itself, one server session per episode
    (the shop, the booking site): the session rides on a cookie set before the first page.

    Subclasses set `server` (with `url`, `new_session(goal_id)`, `end_session(sid)`,
    `close()`), `goals`, `session_cookie` and `_own_server`.
    """

    session_cookie: str
    goal_id = 0
    _session: str | None = None
    _own_server = False

    @property
    def goal(self) -> Any:
        """The current goal (what scripted policies read)."""
        return self.goals[self.goal_id]

    def _attach(self, server: Any, split: str, make_server: Any) -> Any:
        """Use a shared `server` of the same split, or start (and later close) our own."""
        if server is None:
            server, self._own_server = make_server(), True
        elif server.split != split:
            raise ValueError(f"the shared server serves split {server.split!r}, not {split!r}")
        self.server = server
        return server

    def setup(self, page: Page, *, seed: int, options: dict[str, Any]) -> str:
        self.goal_id = int(options["goal_id"])
        self._use_session(page, self.server.new_session(self.goal_id))
        page.goto(self.server.url, wait_until="domcontentloaded")
        return self.goal.instruction

    def _use_session(self, page: Page, sid: str) -> None:
        self._session = sid
        page.context.add_cookies([{"name": self.session_cookie, "value": sid, "url": self.server.url}])

    def teardown(self) -> None:
        if self._session is not None:
            self.server.end_session(self._session)
            self._session = None

    def close(self) -> None:
        if self._own_server:
            self.server.close()
