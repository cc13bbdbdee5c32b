"""BrowserEnv: a Gymnasium env that drives one page of headless Chromium for a task."""
from __future__ import annotations

import functools
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from webgrove.envs.browser.actions import MAX_ACTION_CHARS, ActionParseError, BrowserAction, parse_action
from webgrove.envs.browser.axtree import absolute_ref, first_frame_seq, interactive_refs, refs_in, relative_refs
from webgrove.envs.browser.chromium import Chromium
from webgrove.envs.browser.fork import Fork, capture, rebuild
from webgrove.envs.browser.options import BrowserOptions
from webgrove.envs.browser.origins import allowed_folders, file_url, is_allowed, normalize_origins, origin_of
from webgrove.envs.browser.task import BrowserTask
from webgrove.envs.spaces import AnyText

if TYPE_CHECKING:
    from playwright.sync_api import APIResponse, BrowserContext, Download, Page, Request, Route, WebSocketRoute

MAX_PAGE_CHARS = 2_000_000
MAX_REDIRECTS = 10  # hops checked per request; a longer chain is blocked
_BODY_HEADERS = ("content-type", "content-length", "origin")
# What a navigation answered by a redirect gets: a document that replaces itself (no
# history entry) with the redirect's final URL.
_CLIENT_REDIRECT_HTML = "<!DOCTYPE html><script>location.replace({})</script>"

# A copy of the document with live form values written back into attributes, so the
# `html` observation shows what was typed and ticked; the page itself is not touched.
_HTML_WITH_VALUES_JS = """() => {
  const clone = document.documentElement.cloneNode(true);
  const live = document.querySelectorAll('input, textarea, select');
  const copy = clone.querySelectorAll('input, textarea, select');
  live.forEach((el, i) => {
    const c = copy[i];
    if (!c) return;
    if (el.tagName === 'TEXTAREA') { c.textContent = el.value; return; }
    if (el.tagName === 'SELECT') {
      Array.from(el.options).forEach((o, j) => {
        if (o.selected) c.options[j].setAttribute('selected', '');
        else c.options[j].removeAttribute('selected');
      });
      return;
    }
    if (el.type === 'checkbox' || el.type === 'radio') {
      if (el.checked) c.setAttribute('checked', ''); else c.removeAttribute('checked');
    } else if (el.type !== 'file') {
      c.setAttribute('value', el.value);
    }
  });
  return '<!DOCTYPE html>' + clone.outerHTML;
}"""
# Counts tabs the page opens (window.open, links and forms with a target) and download
# links clicked, so a step can wait for the new tab or the refused download instead of sleeping. Read and reset by _TAKE_OPENED_JS.
_COUNT_OPENED_JS = """(() => {
  window.__webgroveOpened = 0;
  const open = window.open;
  window.open = function (...args) { window.__webgroveOpened++; return open.apply(this, args); };
  const counts = (el) => el && el.target && !['_self', '_parent', '_top'].includes(el.target.toLowerCase());
  window.__webgroveDownloads = 0;
  window.addEventListener('click', (e) => {
    const link = e.target.closest && e.target.closest('a[href], area[href]');
    if (!e.defaultPrevented && counts(link)) window.__webgroveOpened++;
    if (!e.defaultPrevented && link && link.hasAttribute('download')) window.__webgroveDownloads++;
  });
  window.addEventListener('submit', (e) => {
    if (!e.defaultPrevented && counts(e.target)) window.__webgroveOpened++;
  });
})();"""
_TAKE_OPENED_JS = """() => {
  const n = [window.__webgroveOpened || 0, window.__webgroveDownloads || 0];
  window.__webgroveOpened = window.__webgroveDownloads = 0;
  return n;
}"""
POPUP_WAIT_S = 2.0
# Scroll what a wheel at the viewport's centre would scroll, at once (a wheel event
# scrolls asynchronously, so the next observation could miss it).
_SCROLL_JS = """(dy) => {
  let el = document.elementFromPoint(innerWidth / 2, innerHeight / 2);
  while (el && el !== document.body && el !== document.documentElement) {
    const style = getComputedStyle(el);
    if (/(auto|scroll)/.test(style.overflowY) && el.scrollHeight > el.clientHeight) break;
    el = el.parentElement;
  }
  if (!el || el === document.body || el === document.documentElement) el = document.scrollingElement;
  el.scrollBy({top: dy, behavior: 'instant'});
}"""
_CLEAR_SESSION_STORAGE_JS = "() => { try { sessionStorage.clear(); } catch (e) {} }"
_SELECT_OPTIONS_JS = """(el) => el.tagName === 'SELECT'
  ? Array.from(el.options).map(o => [o.value, o.label, o.text.trim()]) : null"""


@dataclass
class StepTimings:
    """Seconds spent in the parts of one step.

    Any two compare equal: timings are measurements, not what the env did, so
    same-seed determinism checks (Gymnasium's `check_env`) compare infos without them.
    """

    action_s: float = field(default=0.0, compare=False)
    validate_s: float = field(default=0.0, compare=False)
    observe_s: float = field(default=0.0, compare=False)
    step_s: float = field(default=0.0, compare=False)


class BrowserCrashed(RuntimeError):
    """The browser process or the page's renderer died during a step."""


class StateDivergedError(RuntimeError):
    """Replaying a recorded action history led to a different page (a non-deterministic site)."""


@dataclass(frozen=True)
class BrowserState:
    """What `get_state` returns: enough to rebuild the page by replay.

    Attributes:
        seed: the page seed the episode was set up with.
        options: reset's options (e.g. {"goal_id": 3}).
        actions: every action string stepped since reset, invalid ones included.
        axtree: the aria snapshot at the time of `get_state`, checked after replay.
        fork: for tasks that can copy their site's state (`save_site`/`load_site`),
            the page as a `Fork`; `set_state` restores it with one navigation.
    """

    seed: int
    options: dict[str, Any] = field(default_factory=dict)
    actions: tuple[str, ...] = ()
    axtree: str = ""
    fork: Fork | None = None


class BrowserEnv(gym.Env):
    """A task's web page in headless Chromium, stepped with text actions.

    ## Action Space
    `AnyText`: one action string of the grammar in `envs/browser/actions.py`:
    `click [ref]`, `type [ref] [text]`, `type [ref] [text] [enter]`,
    `select [ref] [option]`, `press [key]`, `scroll [up|down]`, `goto [url]`, `back`,
    `stop [answer]`. `ref`s come from the observation's `axtree`. A malformed action,
    an unknown or stale ref, an off-origin `goto` or a failing browser action is a
    no-op: reward 0 and `info["error"]` says why.

    ## Observation Space
    `Dict` with `goal` (the instruction), `url` and `axtree` (Playwright's
    `aria_snapshot(mode="ai")`, elements tagged `[ref=eN]`); with `screenshot=True`
    also `screenshot` (uint8, viewport height × width × 3), with `html=True` the page
    HTML (live form values included) and with `dom_text=True` its visible text and
    controls (see `envs/browser/dom_text.py`).

    ## Rewards
    Whatever the task's `validate` returns after each step.

    ## Episode End
    Terminated when the task says done or after `stop [answer]`. Truncated when the
    browser, its Playwright driver or the page crashed (`info["error"]` says so); the
    next reset relaunches them.
    Step limits come from Gymnasium's `TimeLimit` wrapper (`max_episode_steps`).

    ## Info
    `goal`, `available_actions` (refs of the elements that take clicks, text or
    choices, unless the task lists its own), `error`, `blocked_requests` (URLs aborted
    since the last step for leaving the task's `allowed_origins`: documents,
    subresources, redirect targets, worker fetches, WebSockets), `blocked_downloads`,
    `timings` (a `StepTimings`) and, when the episode ends, `reward_info`.

    ## Security
    Only the task's `allowed_origins` load (see `envs/browser/origins.py`); service
    workers are not registered; downloads are refused.

    ## Arguments
    task: the task (see `envs/browser/task.py`); register ids with
        `envs/browser/registry.py`.
    options: how the browser runs (`BrowserOptions`: headless, viewport, timeouts,
        observation extras).
    browser: a `Chromium` to take a context from (shared, not closed by the env);
        default: the env launches and owns its own.
    render_mode: None or "rgb_array" (a screenshot).

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, task: BrowserTask, options: BrowserOptions | None = None, *,
                 browser: Chromium | None = None, render_mode: str | None = None) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', not {render_mode!r}")
        options = options if options is not None else BrowserOptions()
        self.task = task
        self.options = options
        self.render_mode = render_mode
        self.want_screenshot = screenshot = options.screenshot
        self.want_html = html = options.html
        self.want_dom_text = dom_text = options.dom_text
        self.viewport = tuple(options.viewport or task.viewport)
        self.action_timeout_s = float(options.action_timeout_s)
        self.navigation_timeout_s = float(options.navigation_timeout_s)
        self.step_deadline_s = options.step_deadline_s
        self.allowed_origins = normalize_origins(task.allowed_origins)

        width, height = self.viewport
        obs_spaces: dict[str, spaces.Space] = {
            "goal": AnyText(MAX_PAGE_CHARS),
            "url": AnyText(MAX_PAGE_CHARS),
            "axtree": AnyText(MAX_PAGE_CHARS),
        }
        if screenshot:
            obs_spaces["screenshot"] = spaces.Box(0, 255, (height, width, 3), np.uint8)
        if html:
            obs_spaces["html"] = AnyText(MAX_PAGE_CHARS)
        if dom_text:
            obs_spaces["dom_text"] = AnyText(MAX_PAGE_CHARS)
        self.observation_space = spaces.Dict(obs_spaces)
        self.action_space = AnyText(MAX_ACTION_CHARS)

        self._own_browser = browser is None
        self._browser = browser if browser is not None else Chromium(headless=options.headless)
        self._context: BrowserContext | None = None
        self._page: Page | None = None
        self._pages: list[Page] = []
        self._closed = False
        self._episode: BrowserState | None = None  # seed and options of the running episode
        self._actions: list[str] = []
        self._goal = ""
        self._refs: set[str] = set()
        self._last_obs: dict[str, Any] | None = None
        self._page_axtree = ""  # the whole snapshot behind the last observation
        self._blocked: list[str] = []
        self._downloads: list[str] = []
        self._redirect_targets: dict[str, APIResponse] = {}
        self._pending_redirect: tuple[Page, str] | None = None
        self._base_page: Page | None = None  # the tab episodes start in, reused across resets
        self._ref_base: int | None = None  # its document number at the episode's start
        self._first_seq = 0  # the shown document number of the episode's first snapshot
        self._cdp: Any = None  # a CDP session on _base_page (history reset)
        self._crash: str | None = None
        self._terminated = False
        self._truncated = False

    # -- Gymnasium API ---------------------------------------------------------------

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        options = self.task.episode_options(dict(options or {}), self.np_random)
        page_seed = int(self.np_random.integers(2**31 - 1))
        self._start_episode(page_seed, options)
        return self.observe()

    def step(self, action: str) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self._episode is None:
            raise RuntimeError("call reset() before step()")
        t0 = time.perf_counter()
        if self._terminated or self._truncated:
            obs, info = self._copy_obs(), self._info()
            info["error"] = "the episode is over; call reset()"
            return obs, 0.0, self._terminated, self._truncated, info
        self._actions.append(action if isinstance(action, str) else repr(action))
        reward, error, timings = self._apply(action)
        if self._crash is None:
            t_obs = time.perf_counter()
            obs, info = self.observe()
            timings.observe_s = time.perf_counter() - t_obs
        timings.step_s = time.perf_counter() - t0
        if self._crash is not None:  # the browser died or the page hung: end the episode
            self._truncated = True
            self._close_context()
            obs, info = self._copy_obs(), self._info()
            info.update(error=self._crash, timings=timings, reward_info={"error": self._crash})
            return obs, 0.0, False, True, info
        info["error"] = error
        info["timings"] = timings
        if self._terminated:
            info["reward_info"] = self._reward_info
        return obs, reward, self._terminated, False, info

    @property
    def page_axtree(self) -> str:
        """The whole aria snapshot behind the current observation (a task may show less,
        see `observation_axtree`); "" before the first observation."""
        return self._page_axtree if self._last_obs else ""

    def observe(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The current observation and info, without stepping (e.g. after `set_state`)."""
        if self._episode is None:
            raise RuntimeError("call reset() before observe()")
        if self._crash is None:
            try:
                with self._browser.watchdog(self.step_deadline_s) as fired:
                    self._last_obs = self._observe_page()
            except Exception as e:
                error = self._note_failure(e, fired, "observing the page")
                # Still up but cannot be read: the page hangs. Nothing more can happen in it.
                self._crash = self._crash or f"{error}; the page did not respond"
        info = self._info()
        if self._crash is not None:
            self._truncated = True
            self._close_context()  # a hung renderer would keep burning CPU
            info["error"] = self._crash
        return self._copy_obs(), info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self._page is None or self._crash is not None:
            return None
        return _decode_png(self._page.screenshot())

    def close(self) -> None:
        """Close the page, the context and (when owned) the browser. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self.task.teardown()
        finally:
            try:
                self.task.close()
            finally:
                self._close_context()
                if self._own_browser:
                    self._browser.close()

    def __enter__(self) -> BrowserEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- restore for tree search -----------------------------------------------------

    def get_state(self) -> BrowserState:
        """The episode's seed, options and action history, plus the current axtree."""
        if self._episode is None:
            raise RuntimeError("call reset() before get_state()")
        axtree = (self._last_obs or {}).get("axtree", "")
        return BrowserState(self._episode.seed, dict(self._episode.options),
                            tuple(self._actions), axtree, self._capture_fork(axtree))

    def set_state(self, state: BrowserState) -> None:
        """Rebuild a recorded state: from its fork when it has one (one navigation), else
        reset with its seed and replay its actions; then compare pages.

        Raises StateDivergedError if the page after replay differs from the recorded
        axtree (the site is not deterministic), BrowserCrashed if the browser died.
        """
        if state.fork is not None and self._restore_fork(state):
            return
        self._start_episode(state.seed, dict(state.options))
        for action in state.actions:
            if self._terminated or self._truncated:
                break
            self._replay_snapshot()  # refs as the agent saw them before this action
            self._actions.append(action)
            self._apply(action)
            if self._crash is not None:
                raise BrowserCrashed(f"browser died while replaying {action!r}: {self._crash}")
        self.observe()
        if self._crash is not None:
            raise BrowserCrashed(self._crash)
        now = self._last_obs["axtree"] if self._last_obs else ""
        if state.axtree and now != state.axtree:
            raise StateDivergedError(
                f"replaying {len(state.actions)} actions from seed {state.seed} gave a "
                f"different page; the site is not deterministic. {_first_difference(state.axtree, now)}")

    def _capture_fork(self, axtree: str) -> Fork | None:
        save_site = getattr(self.task, "save_site", None)
        if save_site is None or self._crash is not None or self._page is None:
            return None
        site = save_site(self.page)
        return None if site is None else capture(self.page, axtree, site, self._terminated, self._reward_info)

    def _restore_fork(self, state: BrowserState) -> bool:
        """Restore from `state.fork`; False (replay instead) if the page is not the recorded one."""
        try:
            self._start_episode(state.seed, dict(state.options), fork=state.fork)
        except BrowserCrashed:
            raise
        except RuntimeError:  # `rebuild`: the page lacks the recorded form controls
            return False
        self._actions = list(state.actions)
        self._terminated = state.fork.terminated
        self._reward_info = dict(state.fork.reward_info)
        self.observe()
        if self._crash is not None:
            raise BrowserCrashed(self._crash)
        return not state.axtree or self._last_obs["axtree"] == state.axtree

    def _replay_snapshot(self) -> None:
        try:
            with self._browser.watchdog(self.step_deadline_s) as fired:
                self._snapshot(self.page)
        except Exception as e:
            self._note_failure(e, fired, "observing the page")
        if self._crash is not None:
            raise BrowserCrashed(f"browser died during replay: {self._crash}")

    @property
    def page(self) -> Page:
        """The page the agent acts on (the latest open tab)."""
        if self._page is None:
            raise RuntimeError("no page; call reset()")
        return self._page

    @property
    def goal(self) -> str:
        return self._goal

    @property
    def browser(self) -> Chromium:
        return self._browser

    @property
    def browser_pid(self) -> int | None:
        """The Chromium process id (for memory accounting and fault tests)."""
        return self._browser.pid

    # -- episode setup -----------------------------------------------------------------

    def _start_episode(self, seed: int, options: dict[str, Any], fork: Fork | None = None) -> None:
        if self._closed:
            raise RuntimeError("this env is closed")
        self.task.teardown()
        self._episode = BrowserState(seed, options)
        self._actions = []
        self._refs = set()
        self._blocked = []
        self._downloads = []
        self._redirect_targets = {}
        self._pending_redirect = None
        self._refused_navigation: str | None = None
        self._crash = None
        self._terminated = self._truncated = False
        self._reward_info: dict[str, Any] = {}
        self._last_obs = None
        self._ref_base = None
        self._first_seq = fork.frame_seq if fork is not None else 0
        if not self._recycle_page():
            self._close_context()
            self._open_context()
        with self._browser.watchdog(self.step_deadline_s) as fired:
            try:
                if fork is None:
                    self._goal = self.task.setup(self.page, seed=seed, options=options)
                else:
                    self._goal = self.task.load_site(self.page, fork.site, seed=seed, options=options)
                    rebuild(self.page, fork)
                self._settle_redirect()
                self._forget_history()
            except Exception as e:
                if fired.is_set() or not self._alive():
                    raise BrowserCrashed(f"the browser died while setting up the task: {e}") from e
                raise

    def _open_context(self) -> None:
        width, height = self.viewport
        context = self._browser.new_context(
            viewport={"width": width, "height": height}, accept_downloads=False,
            device_scale_factor=1, service_workers="block")
        context.set_default_timeout(self.action_timeout_s * 1000)
        context.set_default_navigation_timeout(self.navigation_timeout_s * 1000)
        context.route(_routed_urls(self.allowed_origins), self._route)
        context.route_web_socket("**/*", self._route_web_socket)
        context.on("request", self._on_request)
        context.add_init_script(_COUNT_OPENED_JS)
        context.on("page", self._on_new_page)
        self._context = context
        self._pages = []
        self._page = None
        self._on_new_page(context.new_page())
        self._base_page = self._page

    def _recycle_page(self) -> bool:
        """Make the episode tab like a fresh one without a new context or page (a new
        page costs a renderer, ~150 ms): other tabs closed, cookies and storage cleared,
        the mouse moved off the page. Refs are shown relative to the episode's first
        document and history is reset after setup, so both read as on a fresh page.
        False when there is no live tab to reuse."""
        page = self._base_page
        if self._context is None or not self._alive() or page is None or page.is_closed():
            return False
        try:
            for other in [p for p in self._pages if p is not page]:
                other.close()
            self._pages, self._page = [page], page
            page.evaluate(_CLEAR_SESSION_STORAGE_JS)
            self._context.set_storage_state({"cookies": [], "origins": []})
            page.mouse.move(-1, -1)
        except Exception as e:
            if not _is_playwright_error(e):
                raise
            return False  # the tab is in a bad way (say, a dialog or a navigation): start afresh
        return True

    def _forget_history(self) -> None:
        """Drop the tab's history before the page setup left: `back` at an episode's start
        has nowhere to go, in a reused tab as in a fresh one."""
        if self._page is not self._base_page:
            return  # setup opened a tab of its own: fresh already
        if self._cdp is None:
            self._cdp = self._context.new_cdp_session(self._base_page)
        self._cdp.send("Page.resetNavigationHistory")

    def _close_context(self) -> None:
        context, self._context = self._context, None
        self._page, self._pages, self._base_page, self._cdp = None, [], None, None
        if context is not None:
            try:
                context.close()
            except Exception:
                pass  # the browser is gone already

    # -- page events -----------------------------------------------------------------

    def _on_new_page(self, page: Page) -> None:
        """Follow new tabs and popups: the newest open page is the one acted on."""
        if page in self._pages:
            return
        self._pages.append(page)
        self._page = page
        page.on("close", self._on_page_closed)
        page.on("crash", self._on_page_crash)
        page.on("download", self._on_download)

    def _on_page_closed(self, page: Page) -> None:
        if page in self._pages:
            self._pages.remove(page)
        if self._page is page and self._pages:
            self._page = self._pages[-1]

    def _on_page_crash(self, page: Page) -> None:
        self._crash = "the page's renderer crashed"

    def _on_download(self, download: Download) -> None:
        self._downloads.append(download.url)  # the context refuses it (accept_downloads=False)

    def _route(self, route: Route) -> None:
        """Every request the page or its workers make: abort it unless allowed; fetch an
        allowed http(s) request hop by hop (see `_fetch_checked`)."""
        url = route.request.url
        try:
            if not is_allowed(url, self.allowed_origins):
                self._refuse(route, url)
            elif urlsplit(url).scheme not in ("http", "https"):
                route.fallback()
            else:
                self._fetch_checked(route)
        except Exception as e:
            if not _is_playwright_error(e):
                raise
            # The fetch failed (refused, reset, context closing): the page sees a network error.
            _abort_quietly(route)

    def _fetch_checked(self, route: Route) -> None:
        """Fetch a request and its redirects, each hop once, each target checked first.

        Playwright does not route the hops of a redirect Chromium follows itself, so the
        hops are followed here (a 303, or a 301/302 after a POST, becomes a GET without
        the body, as browsers do). The final response goes to the page: for a subresource
        as the answer to the request; for a navigation as a one-line document that
        replaces itself with the final URL, whose request (routed again) is answered
        from `_redirect_targets`, so the page lands on the right URL without a refetch.
        """
        request = route.request
        navigation = request.is_navigation_request()
        cached = self._redirect_targets.pop(request.url, None) if navigation else None
        if cached is not None:
            route.fulfill(response=cached)
            return
        url, method, response = request.url, request.method, route.fetch(max_redirects=0)
        for _ in range(MAX_REDIRECTS + 1):
            location = response.headers.get("location")
            if not 300 <= response.status < 400 or location is None:
                break
            url = urljoin(url, location)
            if not is_allowed(url, self.allowed_origins):
                self._refuse(route, url)
                return
            if method != "HEAD" and (response.status == 303 or (response.status in (301, 302) and method == "POST")):
                method = "GET"
                headers = {k: v for k, v in request.headers.items() if k.lower() not in _BODY_HEADERS}
                response = self._context.request.fetch(url, method="GET", headers=headers, max_redirects=0)
            else:
                response = route.fetch(url=url, max_redirects=0)  # 307/308: same method and body
        else:
            self._refuse(route, url)  # a chain longer than MAX_REDIRECTS
            return
        if url == request.url or not navigation:
            route.fulfill(response=response)
            return
        self._redirect_targets[url] = response
        if request.frame == request.frame.page.main_frame:
            self._pending_redirect = (request.frame.page, url)
        route.fulfill(status=200, content_type="text/html", body=_CLIENT_REDIRECT_HTML.format(
            json.dumps(url).replace("<", "\\u003c")))

    def _settle_redirect(self) -> None:
        """Wait for the page to land on the final URL of a redirect it was answered with."""
        pending, self._pending_redirect = self._pending_redirect, None
        if pending is None or pending[0].is_closed():
            return
        page, url = pending
        page.wait_for_url(lambda u: u.split("#")[0] == url, wait_until="domcontentloaded",
                          timeout=self.navigation_timeout_s * 1000)

    def _route_web_socket(self, ws: WebSocketRoute) -> None:
        if is_allowed(ws.url, self.allowed_origins):
            ws.connect_to_server()
        else:
            self._block(ws.url)
            ws.close(code=1008, reason="blocked: origin not allowed")

    def _on_request(self, request: Request) -> None:
        # Redirect hops are not routed; one that still reaches a forbidden origin (the
        # server answered differently the second time) is reported and the page blanked.
        if not is_allowed(request.url, self.allowed_origins):
            self._block(request.url)

    def _refuse(self, route: Route, url: str) -> None:
        """Refuse a request for `url` (itself or a redirect hop outside the allowed origins).

        A navigation is answered 204 No Content, which cancels it: the page stays as it
        was, with no error page and no history entry to go back from. (Aborting it
        instead commits Chromium's error page some milliseconds after the action has
        returned, a race the step could lose.) Any other request fails as blocked.
        """
        self._block(url)
        if route.request.is_navigation_request():
            self._refused_navigation = url
            route.fulfill(status=204, body="")
        else:
            route.abort("blockedbyclient")

    def _block(self, url: str) -> None:
        if url not in self._blocked:
            self._blocked.append(url)

    # -- stepping --------------------------------------------------------------------

    def _apply(self, action_text: Any) -> tuple[float, str | None, StepTimings]:
        """Parse and run one action, then validate; returns (reward, error, timings)."""
        timings = StepTimings()
        try:
            if isinstance(action_text, str):
                action_text = self.task.translate_action(action_text, self._page_axtree if self._last_obs else "")
            action = parse_action(action_text)
        except (ActionParseError, ValueError, LookupError) as e:
            return 0.0, str(e), timings
        error = self._check(action)
        if error is not None:
            return 0.0, error, timings
        t0 = time.perf_counter()
        with self._browser.watchdog(self.step_deadline_s) as fired:
            try:
                error = self._run(action)
            except Exception as e:
                error = self._note_failure(e, fired, f"{action.kind} failed")
            timings.action_s = time.perf_counter() - t0
            if self._crash is not None:
                return 0.0, self._crash, timings
            t1 = time.perf_counter()
            answer = action.value if action.kind == "stop" else None
            try:
                reward, done, reward_info = self.task.validate(self.page, answer)
            except Exception as e:
                failure = self._note_failure(e, fired, "validating the page")
                return 0.0, self._crash or error or failure, timings
            timings.validate_s = time.perf_counter() - t1
        if done or action.kind == "stop":
            self._terminated = True
            self._reward_info = dict(reward_info)
        return float(reward), error, timings

    def _check(self, action: BrowserAction) -> str | None:
        """Why an action cannot run on the current page, or None."""
        if action.ref is not None and action.ref not in self._refs:
            return f"unknown or stale ref {action.ref}: it is not in the current page's axtree"
        if action.kind == "goto":
            try:
                if urlsplit(action.value).scheme.lower() != "file":  # a file URL is checked below
                    origin_of(action.value)
            except ValueError:
                return f"goto needs an absolute URL, not {action.value!r}"
            if not is_allowed(action.value, self.allowed_origins):
                self._block(action.value)
                return (f"goto refused: {action.value} is outside the allowed origins "
                        f"({', '.join(self.allowed_origins)})")
        return None

    def _run(self, action: BrowserAction) -> str | None:
        """Perform an action on the page; returns an error for a no-op, raises on failure."""
        page = self.page
        kind = action.kind
        self._refused_navigation = None
        if kind in ("click", "type", "select"):
            base = (self._ref_base or 0) if page is self._base_page else 0
            target = page.locator(f"aria-ref={absolute_ref(action.ref, base)}")
            if kind == "click":
                # A mouse click at the element's centre as it is now, as a person's: no
                # wait for a stable box (two animation frames plus round trips, half a
                # step), and a covering element takes the click. Playwright still waits
                # for a navigation the click starts.
                target.click(force=True)
            elif kind == "type":
                target.fill(action.value)
                if action.enter:
                    target.press("Enter")
            else:
                options = target.evaluate(_SELECT_OPTIONS_JS)
                if options is None:
                    return f"select [{action.ref}]: not a <select> element; click its options instead"
                if not any(action.value in o for o in options):
                    labels = ", ".join(o[2] or o[0] for o in options)
                    return f"select [{action.ref}]: no option {action.value!r}; options: {labels}"
                target.select_option(action.value)
        elif kind == "press":
            page.keyboard.press(action.value)
        elif kind == "scroll":
            dy = 0.8 * self.viewport[1] * (1 if action.value == "down" else -1)
            page.evaluate(_SCROLL_JS, dy)
        elif kind == "goto":
            try:
                page.goto(action.value, wait_until="domcontentloaded")
            except Exception as e:  # a refused redirect cancels the navigation: said below
                if self._refused_navigation is None or not _is_playwright_error(e):
                    raise
        elif kind == "back":
            before = page.url
            if page.go_back(wait_until="domcontentloaded") is None and page.url == before:
                return "back: no earlier page in this tab's history"
        if kind in ("click", "press") or action.enter:
            self._follow_new_tab(page)
        if kind != "stop":
            # Actions wait for the navigations they start to commit; then let the new
            # document parse before it is observed.
            self._settle_redirect()
            self.page.wait_for_load_state("domcontentloaded", timeout=self.navigation_timeout_s * 1000)
        if not is_allowed(self.page.url, self.allowed_origins):
            return self._leave_forbidden_page(kind)
        refused, self._refused_navigation = self._refused_navigation, None
        if refused is not None:
            return f"{kind}: navigation to {refused} blocked (outside the allowed origins); the page stays"
        return None

    def _leave_forbidden_page(self, kind: str) -> str:
        """Back to the last allowed page after a navigation that was blocked (Chromium's
        error page) or that escaped the filter; about:blank if there is none."""
        escaped = self.page.url
        if not escaped.startswith("chrome-error:"):
            self._block(escaped)
        self.page.go_back(wait_until="domcontentloaded")
        if not is_allowed(self.page.url, self.allowed_origins):
            self.page.goto("about:blank")
        return f"{kind}: the page left the allowed origins (blocked: {', '.join(self._blocked) or escaped})"

    def _follow_new_tab(self, page: Page) -> None:
        """If the action opened a tab or started a download whose event has not arrived
        yet, wait for it (so `info` reports it with this step)."""
        try:
            opened, downloads = page.evaluate(_TAKE_OPENED_JS)
        except Exception as e:
            if not _is_playwright_error(e):
                raise
            return  # the page navigated away meanwhile: it opened no tab worth waiting for
        waits = []
        if opened and self._page is page and self._context is not None:
            waits.append((self._context, "page"))
        if downloads and not self._downloads:
            waits.append((page, "download"))
        for source, event in waits:
            try:
                source.wait_for_event(event, timeout=POPUP_WAIT_S * 1000)
            except Exception as e:
                if not _is_playwright_error(e):
                    raise

    def _note_failure(self, e: Exception, fired: Any, what: str) -> str:
        """Classify an exception from Playwright: a crash (ends the episode) or a no-op error."""
        if fired.is_set():
            self._crash = (f"{what}: the page did not respond within {self.step_deadline_s:.0f} s; "
                           "the browser was killed and is relaunched on the next reset")
        elif self._crash is not None or not self._alive():
            self._crash = (f"{what}: the browser crashed or was killed "
                           f"({_first_line(e)}); it is relaunched on the next reset")
        elif not _is_playwright_error(e):
            raise e
        return self._crash or f"{what}: {_first_line(e)}"

    def _alive(self) -> bool:
        return (self._browser.connected and self._page is not None
                and not self._page.is_closed() and self._crash is None)

    # -- observations ------------------------------------------------------------------

    def _snapshot(self, page: Page) -> str:
        """The page's aria snapshot; remembers its refs (the ones actions may use)."""
        try:
            axtree = page.aria_snapshot(mode="ai")
        except Exception as e:
            if not _is_playwright_error(e) or not self._alive():
                raise
            # A navigation started by a timer or script replaced the document mid-snapshot.
            page.wait_for_load_state("domcontentloaded")
            axtree = page.aria_snapshot(mode="ai")
        if page is self._base_page:
            if self._ref_base is None:
                seq = first_frame_seq(axtree)
                self._ref_base = None if seq is None else seq - self._first_seq
            axtree = relative_refs(axtree, self._ref_base or 0)
        self._refs = refs_in(axtree)
        return axtree

    def _observe_page(self) -> dict[str, Any]:
        page = self.page
        axtree = self._page_axtree = self._snapshot(page)
        # A task may show a shorter page (`observation_axtree`, e.g. the booking site's compact
        # tree); actions are still read against the whole snapshot.
        shown = getattr(self.task, "observation_axtree", None)
        obs: dict[str, Any] = {"goal": self._goal, "url": page.url, "axtree": shown(axtree) if shown else axtree}
        if self.want_screenshot:
            obs["screenshot"] = self._fit_screenshot(_decode_png(page.screenshot()))
        if self.want_html or self.want_dom_text:
            html = page.evaluate(_HTML_WITH_VALUES_JS)
            if self.want_html:
                obs["html"] = html
            if self.want_dom_text:
                from webgrove.envs.browser.dom_text import html_to_dom_text
                obs["dom_text"] = html_to_dom_text(html)
        return obs

    def _fit_screenshot(self, image: np.ndarray) -> np.ndarray:
        """Crop or pad to the declared viewport shape (device pixel rounding can differ)."""
        shape = self.observation_space["screenshot"].shape
        if image.shape == shape:
            return image
        out = np.zeros(shape, dtype=np.uint8)
        h, w = min(shape[0], image.shape[0]), min(shape[1], image.shape[1])
        out[:h, :w] = image[:h, :w]
        return out

    def _copy_obs(self) -> dict[str, Any]:
        """A copy of the latest observation (callers may keep or change what they get)."""
        if self._last_obs is None:
            return self._empty_obs()
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self._last_obs.items()}

    def _empty_obs(self) -> dict[str, Any]:
        obs: dict[str, Any] = {"goal": self._goal, "url": "", "axtree": ""}
        if self.want_screenshot:
            obs["screenshot"] = np.zeros(self.observation_space["screenshot"].shape, np.uint8)
        if self.want_html:
            obs["html"] = ""
        if self.want_dom_text:
            obs["dom_text"] = ""
        return obs

    def _info(self) -> dict[str, Any]:
        obs = self._last_obs or {}
        axtree = self._page_axtree if obs else ""
        refs = interactive_refs(axtree)
        info = {
            "goal": self._goal,
            "available_actions": self.task.available_actions(obs["url"], refs, axtree) if obs else refs,
            "error": None,
            "blocked_requests": list(self._blocked),
            "blocked_downloads": list(self._downloads),
        }
        self._blocked.clear()
        self._downloads.clear()
        return info


def _routed_urls(allowed: tuple[str, ...]) -> re.Pattern[str]:
    """Which requests go through `_route`: all but plain files inside an allowed folder
    without symbolic links (a MiniWoB task's own folder). Those cannot redirect and are
    allowed whatever they are, so Chromium loads them without a round trip to Python
    (a third of a reset). Anything with `%` (an encoded `/` or dot) or `/.` is routed
    and checked like everything else."""
    folders = [f for f in allowed_folders(allowed) if not _has_symlinks(f)]
    if not folders:
        return re.compile(r"^")
    # No `%`, `?`, `#` and no segment starting with `.` (a `..` Chromium left) after the folder.
    skip = "|".join(re.escape(file_url(quote(f))) + r"(?!\.)(?:(?!/\.)[^%?#])*$" for f in folders)
    return re.compile(rf"^(?!(?:{skip}))")


@functools.lru_cache(maxsize=64)
def _has_symlinks(folder: str, limit: int = 20_000) -> bool:
    """Whether a folder holds a symbolic link (or too many entries to tell quickly)."""
    seen = 0
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            seen += 1
            if seen > limit or os.path.islink(os.path.join(root, name)):
                return True
    return False


def _decode_png(png: bytes) -> np.ndarray:
    import io

    from PIL import Image  # Pillow comes with the browser extra (a miniwob dependency)

    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _is_playwright_error(e: Exception) -> bool:
    from playwright.sync_api import Error

    return isinstance(e, Error)


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _first_difference(expected: str, actual: str) -> str:
    a, b = expected.splitlines(), actual.splitlines()
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"First difference at line {i + 1}: expected {x.strip()!r}, got {y.strip()!r}."
    return f"Expected {len(a)} lines, got {len(b)}."


def _abort_quietly(route: Route) -> None:
    try:
        route.abort("failed")
    except Exception as e:
        if not _is_playwright_error(e):
            raise  # a bug, not a closed context
