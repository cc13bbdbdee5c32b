"""`webgrove/Browser-v0`: any start URL, a goal and an evaluator, on allowed origins only."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from webgrove.envs.browser.env import BrowserEnv
from webgrove.envs.browser.evaluators import Evaluator
from webgrove.envs.browser.origins import is_allowed, normalize_origins, origin_of
from webgrove.envs.browser.task import Task

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from webgrove.envs.browser.chromium import Chromium


class WebTask(Task):
    """Open `start_url`; the evaluator scores the page after every step.

    Args:
        start_url: the page an episode starts on.
        goal: the instruction shown to the agent.
        evaluator: scores the page in [0, 1] (see `envs/browser/evaluators.py`); None
            scores 0, so only `stop` ends the episode.
        allowed_origins: origins the page may load from and visit; default the start
            URL's origin.
        end_on_success: end the episode as soon as the evaluator gives 1.
        viewport: (width, height).
    """

    def __init__(self, start_url: str, goal: str, evaluator: Evaluator | None = None,
                 allowed_origins: list[str] | None = None, end_on_success: bool = True,
                 viewport: tuple[int, int] = (1280, 720)) -> None:
        origin_of(start_url)  # raises ValueError for a relative URL
        self.start_url = start_url
        self.goal = goal
        self.evaluator = evaluator
        self.allowed_origins = normalize_origins(
            allowed_origins if allowed_origins is not None else [start_url])
        if not is_allowed(start_url, self.allowed_origins):
            raise ValueError(f"start_url {start_url} is outside allowed_origins {self.allowed_origins}")
        self.end_on_success = end_on_success
        self.viewport = tuple(viewport)

    def setup(self, page: Page, *, seed: int, options: dict[str, Any]) -> str:
        page.goto(self.start_url, wait_until="domcontentloaded")
        return self.goal

    def validate(self, page: Page, answer: str | None) -> tuple[float, bool, dict[str, Any]]:
        score = float(self.evaluator(page, answer)) if self.evaluator is not None else 0.0
        success = score >= 1.0
        done = answer is not None or (self.end_on_success and success)
        reward = score if done else 0.0
        return reward, done, {"score": score, "success": success, "answer": answer}


class WebBrowserEnv(BrowserEnv):
    """Any web page in Chromium (`webgrove/Browser-v0`).

    `gymnasium.make("webgrove/Browser-v0", start_url=..., goal=..., evaluator=UrlMatch(...),
    allowed_origins=[...])`. The reward is the evaluator's score when the episode ends
    (success, or `stop [answer]`), else 0. See `BrowserEnv` for spaces and info.

    Args:
        start_url, goal, evaluator, allowed_origins, end_on_success: as in `WebTask`.
        screenshot, html, dom_text, viewport, action_timeout_s, navigation_timeout_s,
        browser, headless, render_mode: as in `BrowserEnv`.
    """

    def __init__(
        self,
        start_url: str,
        goal: str,
        evaluator: Evaluator | None = None,
        allowed_origins: list[str] | None = None,
        *,
        end_on_success: bool = True,
        screenshot: bool = False,
        html: bool = False,
        dom_text: bool = False,
        viewport: tuple[int, int] = (1280, 720),
        action_timeout_s: float = 5.0,
        navigation_timeout_s: float = 15.0,
        browser: Chromium | None = None,
        headless: bool = True,
        render_mode: str | None = None,
    ) -> None:
        task = WebTask(start_url, goal, evaluator, allowed_origins,
                       end_on_success=end_on_success, viewport=viewport)
        super().__init__(
            task, screenshot=screenshot, html=html, dom_text=dom_text,
            action_timeout_s=action_timeout_s, navigation_timeout_s=navigation_timeout_s,
            browser=browser, headless=headless, render_mode=render_mode)
