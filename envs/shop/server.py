"""The shop as a website: a thin HTTP front on the engine and the one page renderer.

Every page is `envs/shop/pages.py`'s `to_html` for the state encoded in the URL
(`/`, `/search?q=..`, `/item/ASIN?..`, `/item/ASIN/reviews?..`, `/buy/ASIN?..`), so
the site and `webgrove/WebShop-v0` in `html` mode serve the same pages and the same
transitions. A session (one shopper, one goal, at most one purchase) is named by a
cookie, so URLs are the same for every session and several browser envs can share
one server. The purchase page shows the reward and its components.

    webgrove shop serve --port 8080        # then open http://127.0.0.1:8080/
"""
from __future__ import annotations

import random
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from webgrove.envs.local_http import LocalServer, SiteHandler
from webgrove.envs.shop.catalog import Goal
from webgrove.envs.shop.engine import DONE, InvalidAction, Purchase, ShopEngine, ShopState, get_engine
from webgrove.envs.shop.pages import build_page, to_html, url_to_state

SESSION_COOKIE = "webgrove_session"
NEW_SESSION_PATH = "/new"  # /new?goal_id=N starts a new session (a random goal without N)
SESSION_IDLE_S = 3600.0  # a session unused this long is dropped
MAX_PENDING_SESSIONS = 1000
MAX_IGNORED_BODY_BYTES = 1 << 20  # a larger request body closes the connection unread  # sessions handed to cookieless requests, not yet seen back


@dataclass
class Session:
    """One shopper working on one goal.

    Attributes:
        goal_id: index of the goal in the server's split.
        goal: the goal.
        purchase: the first purchase, once made (the episode ends there).
        state: the state of the last page served.
        last_used: `time.monotonic()` of the last request (for the idle timeout).
    """

    goal_id: int
    goal: Goal
    purchase: Purchase | None = None
    state: ShopState = field(default_factory=ShopState)
    last_used: float = field(default_factory=time.monotonic)


class ShopServer(LocalServer):
    """Serves the shop over HTTP from a daemon thread until `close()`; a context manager.

    Args:
        engine: the shop engine (catalog, search index, rules).
        split: the goal split sessions draw from ("train" or "test").
        host: the address to bind; 127.0.0.1 keeps the shop off the network.
        port: 0 picks a free port.
        max_sessions: the least recently used sessions are dropped beyond this many.
        session_idle_s: sessions unused this long are dropped.
        seed: seeds the random goal of sessions started without a goal_id.
        start: serve right away in a background thread (else call `serve_forever`).
    """

    def __init__(self, engine: ShopEngine, split: str = "test", host: str = "127.0.0.1",
                 port: int = 0, max_sessions: int = 10_000, seed: int | None = None,
                 start: bool = True, session_idle_s: float = SESSION_IDLE_S) -> None:
        self.engine = engine
        self.split = split
        self.goals = engine.catalog.split_goals(split)
        self.max_sessions = max_sessions
        self.session_idle_s = session_idle_s
        # Sessions in use, least recently used first. A cookieless request gets a pending
        # session, kept apart until its cookie comes back, so a client that never keeps
        # cookies churns only the pending ones and cannot evict sessions in use.
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._pending: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._listen(_ShopHandler.serving(self), host, port, start, "shop-server")

    # -- sessions ----------------------------------------------------------------------

    def new_session(self, goal_id: int | None = None, pending: bool = False) -> str:
        """Start a session for goal `goal_id` of the split (random if None); returns its id.

        `pending=True` (a cookieless web request) keeps it apart until it is first used.
        """
        with self._lock:
            if goal_id is None:
                goal_id = self._rng.randrange(len(self.goals))
            if not 0 <= goal_id < len(self.goals):
                raise ValueError(f"goal_id {goal_id} out of range for split {self.split!r} "
                                 f"({len(self.goals)} goals)")
            sid = secrets.token_hex(12)
            table, limit = (self._pending, MAX_PENDING_SESSIONS) if pending else (self._sessions, self.max_sessions)
            table[sid] = Session(goal_id, self.goals[goal_id])
            self._drop_idle()
            while len(table) > limit:
                table.popitem(last=False)
            return sid

    def session(self, sid: str | None) -> Session | None:
        """The session with this id (now marked used), or None."""
        if not sid:
            return None
        with self._lock:
            session = self._sessions.get(sid) or self._pending.pop(sid, None)
            if session is None or time.monotonic() - session.last_used > self.session_idle_s:
                self._sessions.pop(sid, None)
                return None
            session.last_used = time.monotonic()
            self._sessions[sid] = session
            self._sessions.move_to_end(sid)
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
            return session

    def end_session(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)
            self._pending.pop(sid, None)

    def _drop_idle(self) -> None:
        """Drop sessions idle past the timeout (the tables are in order of last use)."""
        cutoff = time.monotonic() - self.session_idle_s
        for table in (self._sessions, self._pending):
            while table and next(iter(table.values())).last_used < cutoff:
                table.popitem(last=False)

    # -- pages -------------------------------------------------------------------------

    def render(self, session: Session, path: str, params: dict[str, str]) -> str:
        """The HTML for a URL in a session; records the state (and a purchase on /buy).

        Raises InvalidAction for a URL that names no page.
        """
        state = url_to_state(self.engine, path, params)
        with self._lock:
            if state.page == DONE and session.purchase is None:
                session.purchase = self.engine.purchase(state, session.goal)
            session.state = state
            purchase = session.purchase if state.page == DONE else None
        page = build_page(self.engine, state, session.goal, purchase)
        return to_html(page, self.engine, state, purchase=purchase)


class _ShopHandler(SiteHandler):
    site: ShopServer
    cookie_name = SESSION_COOKIE

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self._drain_body()
        self._send(405, "text/html", _error_page("The shop takes no forms: use GET."))

    def _drain_body(self) -> None:
        """Read and drop a request body: left unread, it would be parsed as the next
        request on a kept-alive connection."""
        length = self.headers.get("Content-Length", "0")
        if length.isdigit() and int(length) <= MAX_IGNORED_BODY_BYTES:
            self.rfile.read(int(length))
        elif length != "0":
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._drain_body()
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        path = parts.path
        if path == "/favicon.ico":
            return self._send(404, "text/plain", "no favicon")
        session_id = self.session_cookie()
        session = self.site.session(session_id)
        if path == NEW_SESSION_PATH or session is None:
            try:
                goal_id = int(params["goal_id"]) if "goal_id" in params else None
                session_id = self.site.new_session(goal_id, pending=True)
            except ValueError as e:
                return self._send(400, "text/html", _error_page(str(e)))
            target = "/" if path == NEW_SESSION_PATH else self.path
            return self._redirect(target, session_id)
        try:
            body = self.site.render(session, path, params)
        except InvalidAction as e:
            return self._send(404, "text/html", _error_page(str(e)))
        self._send(200, "text/html", body)

    def _redirect(self, location: str, session_id: str) -> None:
        self.send_text(303, "", location=location, cookie=session_id)

    def _send(self, status: int, content_type: str, text: str) -> None:
        self.send_text(status, text, content_type=content_type)


def _error_page(message: str) -> str:
    import html

    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>WebShop</title></head>"
            f"<body><h2>Page not found</h2><p>{html.escape(message)}</p>"
            "<p><a href=\"/\">Back to Search</a></p></body></html>")


# -- the `webgrove shop serve` command -------------------------------------------------

@dataclass
class ShopServeConfig:
    """Serve the shop for a person to use in their own browser.

    Each visit to /new starts a session with a random goal of the split
    (/new?goal_id=N picks one); the purchase page shows the reward and its components.
    """

    port: int = field(default=8080, metadata={"help": "port to listen on (0: any free port)"})
    host: str = field(default="127.0.0.1", metadata={
        "help": "address to bind; 0.0.0.0 exposes the shop to the network"})
    data_dir: str | None = field(default=None, metadata={
        "help": "folder with the original WebShop data files (default: the synthetic catalog)"})
    goal_set: str = field(default="synthetic", metadata={
        "help": "goals of the WebShop files: synthetic or human", "choices": ["synthetic", "human"]})
    num_products: int = field(default=1000, metadata={"help": "products in the synthetic catalog"})
    catalog_seed: int = field(default=0, metadata={"help": "seed of the synthetic catalog"})
    split: str = field(default="test", metadata={
        "help": "goal split sessions draw from", "choices": ["train", "test"]})
    seed: int | None = field(default=None, metadata={"help": "seed for the random goal of new sessions"})

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ValueError(f"port must be in 0..65535, not {self.port}")


def run_shop_serve(config: ShopServeConfig) -> int:
    engine = get_engine(data_dir=config.data_dir, goals=config.goal_set,
                        num_products=config.num_products, catalog_seed=config.catalog_seed)
    server = ShopServer(engine, split=config.split, host=config.host, port=config.port,
                        seed=config.seed, start=False)
    server.serve_until_interrupted(
        f"WebShop ({engine.catalog.name}, {len(server.goals)} {config.split} goals) at {server.url}\n"
        f"Open {server.url} to shop; {server.url.rstrip('/')}{NEW_SESSION_PATH} starts a new goal. Ctrl-C stops.")
    return 0
