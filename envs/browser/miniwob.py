"""MiniWoB++ tasks from the `miniwob` PyPI package, as `webgrove/miniwob.<task>-v0`.

Each task is one HTML page shipped in the package: `html/miniwob/<task>.html`, loaded
over file:// (the page may read the package's `html/` folder and nothing else), or a FlightWoB page `html/flight/<site>/wrapper.html` (id
`miniwob.flight.<site>`), served over http://127.0.0.1 because it loads its form in
an iframe. An episode is seeded with `Math.seedrandom(seed)` then
`core.startEpisodeReal()`; the goal is `core.getUtterance()`, the reward
`WOB_RAW_REWARD_GLOBAL` (in [-1, 1]) and the end `WOB_DONE_GLOBAL`.

This module is light: listing the tasks (`miniwob_task_names`) imports no browser.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from webgrove.envs.browser.static_server import StaticServer
from webgrove.envs.browser.task import Task

if TYPE_CHECKING:
    from playwright.sync_api import Page

FLIGHT_PREFIX = "flight."
VIEWPORT = (500, 320)  # the miniwob package's window
FLIGHT_VIEWPORT = (600, 800)
NO_TIME_LIMIT_MS = 2**31 - 1  # the largest delay setTimeout accepts (24.8 days)

_SETUP_JS = """({seed, maxTimeMs, keepTimer, dataMode}) => {
  core.setDataMode(dataMode);
  Math.seedrandom(seed);
  core.EPISODE_MAX_TIME = maxTimeMs;
  core.startEpisodeReal();
  if (!keepTimer) core.clearTimer();
  // The human display (last reward, countdown, click marks) is not part of the task.
  for (const id of ['reward-display', 'click-canvas']) {
    const el = document.getElementById(id);
    if (el) el.style.display = 'none';
  }
  return WOB_TASK_READY;
}"""
_VALIDATE_JS = "() => [WOB_RAW_REWARD_GLOBAL, WOB_DONE_GLOBAL, WOB_REWARD_REASON]"


def miniwob_html_dir() -> Path | None:
    """The `html/` folder of the installed `miniwob` package, found without importing it."""
    spec = importlib.util.find_spec("miniwob")
    if spec is None or not spec.submodule_search_locations:
        return None
    html = Path(list(spec.submodule_search_locations)[0]) / "html"
    return html if html.is_dir() else None


def miniwob_task_names() -> list[str]:
    """Every task page in the installed package: `click-test`, ..., `flight.AA`, ..."""
    html = miniwob_html_dir()
    if html is None:
        return []
    names = sorted(p.stem for p in (html / "miniwob").glob("*.html"))
    names += sorted(FLIGHT_PREFIX + p.parent.name for p in (html / "flight").glob("*/wrapper.html"))
    return names


class MiniWoBTask(Task):
    """One MiniWoB++ task page (`webgrove/miniwob.<task>-v0`).

    The reward is MiniWoB's raw reward (1 for success, down to -1 for failure), given
    when the task ends the episode. See `BrowserEnv` for spaces, actions and info.

    Args:
        task_name: the task, e.g. "click-test" or "flight.AA" (see `miniwob_task_names()`).
        episode_time_limit_s: MiniWoB's in-page episode timer; None (default) turns it
            off, so an episode ends only when the task says so.
        data_mode: MiniWoB's problem distribution, "train" or "test" (flight tasks).
    """

    def __init__(self, task_name: str, episode_time_limit_s: float | None = None,
                 data_mode: str = "train") -> None:
        html = miniwob_html_dir()
        if html is None:
            raise ImportError("MiniWoB tasks need the miniwob package: pip install 'webgrove[browser]'")
        name = task_name
        if name not in miniwob_task_names():
            raise ValueError(f"unknown MiniWoB task {task_name!r}; see "
                             "webgrove.envs.browser.miniwob.miniwob_task_names()")
        if data_mode not in ("train", "test"):
            raise ValueError(f"data_mode must be 'train' or 'test', not {data_mode!r}")
        if episode_time_limit_s is not None and not 0 < episode_time_limit_s * 1000 < NO_TIME_LIMIT_MS:
            raise ValueError("episode_time_limit_s must be positive and below 24 days")
        self.name = name
        self.episode_time_limit_s = episode_time_limit_s
        self.data_mode = data_mode
        self._server: StaticServer | None = None
        if name.startswith(FLIGHT_PREFIX):
            self._server = StaticServer(html)
            site = name[len(FLIGHT_PREFIX):]
            self.url = f"{self._server.url}flight/{site}/wrapper.html"
            self.allowed_origins = (self._server.url,)
            self.viewport = FLIGHT_VIEWPORT
        else:
            self.url = (html / "miniwob" / f"{name}.html").as_uri()
            self.allowed_origins = (html.as_uri() + "/",)  # its own task folder only
            self.viewport = VIEWPORT

    def setup(self, page: Page, *, seed: int, options: dict[str, Any]) -> str:
        page.goto(self.url, wait_until="load")
        limit = self.episode_time_limit_s
        ready = page.evaluate(_SETUP_JS, {
            "seed": seed,
            "maxTimeMs": NO_TIME_LIMIT_MS if limit is None else int(limit * 1000),
            "keepTimer": limit is not None,
            "dataMode": self.data_mode,
        })
        if not ready:  # flight pages load their form into an iframe, then set WOB_TASK_READY
            page.wait_for_function("WOB_TASK_READY === true")
        utterance = page.evaluate("core.getUtterance()")
        if isinstance(utterance, dict):  # natural-language tasks also return their fields
            utterance = utterance["utterance"]
        return str(utterance)

    def validate(self, page: Page, answer: str | None) -> tuple[float, bool, dict[str, Any]]:
        raw, done, reason = page.evaluate(_VALIDATE_JS)
        return float(raw), bool(done), {"raw_reward": float(raw), "reason": reason}

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
