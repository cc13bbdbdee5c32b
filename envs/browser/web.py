"""`webgrove/Browser-v0`: any start URL, a goal and an evaluator, on allowed origins only."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from webgrove.envs.browser.evaluators import Evaluator
from webgrove.envs.browser.origins import is_allowed, normalize_origins, origin_of
from webgrove.envs.browser.task import Task

if TYPE_CHECKING:
    from playwright.sync_api import Page


class WebTask(Task):
    """Open `start_url`; the evaluator scores the page after every step (`webgrove/Browser-v0`).

    `gymnasium.make("webgrove/Browser-v0", start_url=..., goal=..., evaluator=UrlMatch(...),
    allowed_origins=[...])`. The reward is the evaluator's score when the episode ends
    (success, or `stop [answer]`), else 0. See `BrowserEnv` for spaces and info.

    Args:
        start_url: the page an episode starts on (http(s), or a file:// page that
            `allowed_origins` lists).
        goal: the instruction shown to the agent.
        evaluator: scores the page in [0, 1] (see `envs/browser/evaluators.py`); None
            scores 0, so only `stop` ends the episode.
        allowed_origins: origins, files and folders the page may load from and visit
            (see `envs/browser/origins.py`); default the start URL's origin (for a
            file:// start URL, that one file).
        end_on_success: end the episode as soon as the evaluator gives 1.
        viewport: (width, height) of the page; `BrowserOptions.viewport` overrides it.
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
