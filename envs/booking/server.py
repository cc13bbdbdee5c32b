"""The booking site over HTTP on 127.0.0.1: routes, sessions and their snapshots.

Routes (anything else is 404; methods other than GET and POST are refused):

    GET  /                       search form (text, neighbourhood, date + calendar, time, party)
    GET  /search                 results with filters, sorting and pages
    GET  /r/<rid>                a restaurant: details, calendar, free times, alternatives
    GET  /book                   sign-in prompt (until "continue as guest"), then the details form
    POST /book/details           validates the form; 303 to /book/review or back with messages
    GET  /book/review            the review step
    POST /book/confirm           records the booking; 303 to /confirmation/<number>
    GET  /confirmation/<number>  the confirmation page
    GET  /reservations           the session's bookings
    GET  /consent, /promo, /guest  answer the cookie banner, the rewards modal, the sign-in prompt
    POST /signin                 always fails (no accounts offline)
    GET  /new?goal_id=N          a fresh session (for a person; shows goal N's instruction)

A session (cookie `booking_session`) holds the diner's answers to the modals, the
booking in progress and the confirmed bookings; sessions never see each other's
bookings. `snapshot(sid)` / `restore(snapshot)` copy a session as plain JSON data,
which is what tree search forks.

    webgrove booking serve --port 8080      # then open http://127.0.0.1:8080/new
"""
from __future__ import annotations

import copy
import hashlib
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

from webgrove.envs.booking import pages
from webgrove.envs.booking.data import (CUISINES, MAX_PARTY, NEIGHBOURHOODS, OCCASIONS, SEARCH_TIMES, Restaurant,
                                        generate_restaurants, is_available, parse_date, parse_time)
from webgrove.envs.booking.goals import SLOT_WINDOW, BookingGoal, split_goals
from webgrove.envs.booking.reward import Booking, phone_digits
from webgrove.envs.local_http import LocalServer, SiteHandler

SESSION_COOKIE = "booking_session"
SNAPSHOT_VERSION = 1
MAX_BODY_BYTES = 65_536
MAX_FIELD_CHARS = 200
_NAME = re.compile(r"[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ '\-]{0,39}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
DETAIL_FIELDS = ("first_name", "last_name", "phone", "email", "occasion", "seating", "request")
SLOT_FIELDS = ("rid", "date", "time", "party")


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class SessionState:
    """Everything the site remembers about one diner (plain data: it is what snapshots copy)."""

    goal_id: int | None = None
    consent: str = ""  # "", "accept" or "reject"
    guest: bool = False
    signin_failed: bool = False
    promo: str = ""  # "", "join" or "dismiss"
    draft: dict[str, str] = field(default_factory=dict)  # slot + details of the booking in progress
    errors: dict[str, str] = field(default_factory=dict)  # validation messages for the draft
    bookings: list[Booking] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionState:
        data = copy.deepcopy(data)
        data["bookings"] = [Booking(**b) for b in data.get("bookings", [])]
        return cls(**data)

    def taken(self) -> frozenset[tuple[str, str, int]]:
        return frozenset((b.rid, b.date, b.time) for b in self.bookings)


@dataclass
class _Session:
    state: SessionState
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Response:
    status: int = 200
    body: str = ""
    location: str | None = None


class BookingSite:
    """The restaurants and goals of one site (seed, size); pure, shareable between servers."""

    def __init__(self, seed: int = 0, num_restaurants: int = 300) -> None:
        self.seed = seed
        self.num_restaurants = num_restaurants
        self.restaurants = generate_restaurants(seed, num_restaurants)
        self.by_id = {r.rid: r for r in self.restaurants}

    def goals(self, split: str) -> tuple[BookingGoal, ...]:
        return split_goals(split, self.seed, self.num_restaurants)

    def free(self, r: Restaurant, d: date, minutes: int, party: int, taken: frozenset) -> bool:
        return is_available(r, d, minutes, party, self.seed, taken)

    def search(self, query: pages.Query) -> list[Restaurant]:
        words = query.q.lower().split()
        min_rating = float(query.min_rating) if query.min_rating else 0.0
        found = [r for r in self.restaurants
                 if all(w in f"{r.name} {r.cuisine} {r.neighbourhood}".lower() for w in words)
                 and (not query.location or r.neighbourhood == query.location)
                 and (not query.cuisine or r.cuisine == query.cuisine)
                 and (not query.price or r.price_level == int(query.price))
                 and r.rating >= min_rating]
        keys: dict[str, Callable[[Restaurant], Any]] = {
            "match": lambda r: (query.q.lower() not in r.name.lower(), -r.rating, r.rid),
            "rating": lambda r: (-r.rating, r.rid),
            "name": lambda r: (r.name, r.rid),
            "price": lambda r: (r.price_level, -r.rating, r.rid),
        }
        return sorted(found, key=keys[query.sort])

    def slots(self, r: Restaurant, query: pages.Query, taken: frozenset, lo: int, hi: int) -> list[int]:
        return [m for m in range(query.time + lo, query.time + hi + 1, 15)
                if self.free(r, query.date, m, query.party, taken)]


# -- parsing requests -------------------------------------------------------------------

def parse_query(params: dict[str, str]) -> pages.Query:
    """A search query from URL parameters (missing ones take defaults); HTTPError 400 if malformed."""
    q = pages.Query()
    values: dict[str, Any] = {}
    text = params.get("q", "")
    if len(text) > MAX_FIELD_CHARS:
        raise HTTPError(400, "The search text is too long.")
    values["q"] = text.strip()
    checks = {"location": ("",) + NEIGHBOURHOODS, "cuisine": ("",) + CUISINES, "price": tuple(pages.PRICES),
              "min_rating": tuple(pages.RATINGS), "sort": tuple(pages.SORTS)}
    for key, allowed in checks.items():
        if key in params:
            if params[key] not in allowed:
                raise HTTPError(400, f"Unknown {key.replace('_', ' ')} {params[key][:40]!r}.")
            values[key] = params[key]
    if "date" in params:
        values["date"] = parse_date(params["date"])
        if values["date"] is None:
            raise HTTPError(400, "Choose a date from the calendar (today to 8 weeks ahead).")
    if "time" in params:
        values["time"] = parse_time(params["time"])
        if values["time"] not in SEARCH_TIMES:
            raise HTTPError(400, "Choose a time from the list.")
    for key, hi in (("party", MAX_PARTY), ("page", 1000)):
        if key in params:
            if not params[key].isdigit() or not 1 <= int(params[key]) <= hi:
                raise HTTPError(400, f"The {key} must be a number from 1 to {hi}.")
            values[key] = int(params[key])
    return pages.Query(**{**q.__dict__, **values})


def parse_month(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    m = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if m is None or not 1 <= int(m[2]) <= 12:
        raise HTTPError(400, "Unknown calendar month.")
    return int(m[1]), int(m[2])


def safe_next(url: str | None) -> str:
    """A same-site path to go back to (never another host)."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/"
    return url


def validate_details(values: dict[str, str], r: Restaurant) -> dict[str, str]:
    """Messages for the details form's fields (empty when the form is valid)."""
    errors = {}
    for key, label in (("first_name", "first name"), ("last_name", "last name")):
        if not _NAME.fullmatch(values.get(key, "").strip()):
            errors[key] = f"Enter your {label} (letters only)."
    if len(phone_digits(values.get("phone", ""))) not in (10, 11) or re.search(r"[^\d\s()+.\-]", values.get("phone", "")):
        errors["phone"] = "Enter a phone number with 10 digits, e.g. 415-555-0123."
    if not _EMAIL.fullmatch(values.get("email", "").strip()):
        errors["email"] = "Enter an email address like name@example.com."
    if values.get("occasion", "") not in ("", *OCCASIONS):
        errors["occasion"] = "Choose an occasion from the list."
    if values.get("seating", "") not in ("", *r.seating_areas):
        errors["seating"] = "Choose a seating area this restaurant has."
    if len(values.get("request", "")) > MAX_FIELD_CHARS:
        errors["request"] = f"Special requests can be at most {MAX_FIELD_CHARS} characters."
    return errors


def reservation_number(state: SessionState, draft: dict[str, str]) -> str:
    """Deterministic in the session's content, so a restored session books the same number."""
    key = "|".join([str(len(state.bookings))] + [draft.get(k, "") for k in SLOT_FIELDS + DETAIL_FIELDS])
    return "TF-" + hashlib.blake2b(key.encode(), digest_size=4).hexdigest().upper()


# -- the server -------------------------------------------------------------------------

class BookingServer(LocalServer):
    """Serves the booking site from a daemon thread until `close()`; a context manager.

    Args:
        site: restaurants and goals (default: seed 0, 300 restaurants).
        split: the goals `/new?goal_id=N` and `show_goal` refer to.
        host: the address to bind; 127.0.0.1 keeps the site off the network.
        port: 0 picks a free port.
        max_sessions: the least recently used sessions are dropped beyond this many.
        show_goal: show a session's goal on every page (for a person using the site).
        start: serve right away in a background thread (else call `serve_forever`).
    """

    def __init__(self, site: BookingSite | None = None, split: str = "test", host: str = "127.0.0.1",
                 port: int = 0, max_sessions: int = 10_000, show_goal: bool = False,
                 start: bool = True) -> None:
        self.site = site or BookingSite()
        self.split = split
        self.goals = self.site.goals(split)
        self.max_sessions = max_sessions
        self.show_goal = show_goal
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._lock = threading.Lock()
        self._listen(_BookingHandler.serving(self), host, port, start, "booking-server")

    # -- sessions ----------------------------------------------------------------------

    def new_session(self, goal_id: int | None = None, state: SessionState | None = None) -> str:
        """Start a session (optionally for a goal of the split, or from a state); returns its id."""
        if goal_id is not None and not 0 <= goal_id < len(self.goals):
            raise ValueError(f"goal_id {goal_id} out of range for split {self.split!r} ({len(self.goals)} goals)")
        sid = secrets.token_hex(12)
        with self._lock:
            self._sessions[sid] = _Session(state or SessionState(goal_id=goal_id))
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return sid

    def _session(self, sid: str | None) -> _Session | None:
        with self._lock:
            session = self._sessions.get(sid) if sid else None
            if session is not None:
                self._sessions.move_to_end(sid)
            return session

    def bookings(self, sid: str | None) -> list[Booking]:
        """The session's confirmed bookings, oldest first ([] for an unknown session)."""
        session = self._session(sid)
        if session is None:
            return []
        with session.lock:
            return list(session.state.bookings)

    def snapshot(self, sid: str) -> dict[str, Any]:
        """The session's state as plain JSON data: {"version": 1, "session": {...}}."""
        session = self._session(sid)
        if session is None:
            raise KeyError(f"no session {sid!r}")
        with session.lock:
            return {"version": SNAPSHOT_VERSION, "session": copy.deepcopy(session.state.to_dict())}

    def restore(self, snapshot: dict[str, Any]) -> str:
        """A new session holding a copy of a snapshot's state; returns its id."""
        if not isinstance(snapshot, dict) or snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"not a booking session snapshot (version {SNAPSHOT_VERSION})")
        return self.new_session(state=SessionState.from_dict(snapshot["session"]))

    def end_session(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def handle(self, sid: str, method: str, path: str, params: dict[str, str]) -> Response:
        """Answer one request in a session (the handler has made sure the session exists)."""
        session = self._session(sid)
        if session is None:
            raise HTTPError(400, "Your session has expired.")
        with session.lock:
            return _route(self, session.state, method, path, params)


# -- routes -----------------------------------------------------------------------------

def _route(server: BookingServer, state: SessionState, method: str, path: str,
           params: dict[str, str]) -> Response:
    here = path + ("?" + urlencode(params) if params and method == "GET" else "")
    if method == "POST":
        handler = _POST.get(path)
        if handler is None:
            raise HTTPError(404 if path not in _GET else 405, f"Nothing to post to at {path}.")
        return handler(server, state, params)
    if path in _ACTIONS:
        return _ACTIONS[path](server, state, params)
    if state.consent == "":
        _page_for(server, state, path, params)  # a bad URL is reported before the banner
        return _html(server, state, "Cookies", pages.cookie_modal(here))
    title, body = _page_for(server, state, path, params)
    if path.startswith("/r/") and state.promo == "":
        body = pages.promo_modal(here)
    return _html(server, state, title, body)


def _page_for(server: BookingServer, state: SessionState, path: str, params: dict[str, str]) -> tuple[str, str]:
    site = server.site
    if path == "/":
        return "Find a table", pages.home_page(parse_query(params), parse_month(params.get("cal")))
    if path == "/search":
        return "Restaurants", _results(site, state, parse_query(params))
    if path.startswith("/r/"):
        r = site.by_id.get(path[3:])
        if r is None:
            raise HTTPError(404, "No such restaurant.")
        query = parse_query(params)
        free = [m for m in range(0, 24 * 60, 15) if site.free(r, query.date, m, query.party, state.taken())]
        return r.name, pages.restaurant_page(r, query, free, parse_month(params.get("cal")))
    if path == "/book":
        return _book(server, state, params)
    if path == "/book/review":
        return _review(site, state)
    if path.startswith("/confirmation/"):
        booking = next((b for b in state.bookings if b.number == path.split("/")[-1]), None)
        if booking is None:
            raise HTTPError(404, "No reservation with that number.")
        return "Confirmed", pages.confirmation_page(booking, site.by_id[booking.rid])
    if path == "/reservations":
        return "My reservations", pages.reservations_page([(b, site.by_id[b.rid]) for b in state.bookings])
    raise HTTPError(404, f"No page at {path[:80]}.")


def _results(site: BookingSite, state: SessionState, query: pages.Query) -> str:
    found = site.search(query)
    start = (query.page - 1) * pages.RESULTS_PER_PAGE
    shown = found[start:start + pages.RESULTS_PER_PAGE]
    rows = [(r, _nearest(site.slots(r, query, state.taken(), *SLOT_WINDOW), query.time)) for r in shown]
    return pages.results_page(query, rows, len(found))


def _nearest(slots: list[int], time: int, n: int = 3) -> list[int]:
    return sorted(sorted(slots, key=lambda m: (abs(m - time), m))[:n])


def _slot(site: BookingSite, state: SessionState, params: dict[str, str]) -> tuple[Restaurant, date, int, int]:
    """The (restaurant, date, time, party) a booking URL or form names; HTTPError if not bookable."""
    r = site.by_id.get(params.get("rid", ""))
    d = parse_date(params.get("date", ""))
    minutes = parse_time(params.get("time", ""))
    party = params.get("party", "")
    if r is None or d is None or minutes is None or not party.isdigit() or not 1 <= int(party) <= MAX_PARTY:
        raise HTTPError(400, "That booking link is not valid.")
    if not site.free(r, d, minutes, int(party), state.taken()):
        raise HTTPError(409, "Sorry, that table is no longer available. Please choose another time.")
    return r, d, minutes, int(party)


def _book(server: BookingServer, state: SessionState, params: dict[str, str]) -> tuple[str, str]:
    r, d, minutes, party = _slot(server.site, state, params)
    here = "/book?" + urlencode({k: params[k] for k in SLOT_FIELDS})
    if not state.guest:
        return "Sign in", pages.signin_page(here, state.signin_failed)
    same = all(state.draft.get(k) == params[k] for k in SLOT_FIELDS)
    values = state.draft if same else {}
    errors = state.errors if same else {}
    return "Your details", pages.details_page(r, d, minutes, party, values, errors)


def _review(site: BookingSite, state: SessionState) -> tuple[str, str]:
    if not state.draft or state.errors:
        return "Review", pages.message_page("Nothing to review", "Choose a table and fill in your details first.")
    r, d, minutes, party = _slot(site, state, state.draft)
    edit = "/book?" + urlencode({k: state.draft[k] for k in SLOT_FIELDS})
    return "Review", pages.review_page(r, d, minutes, party, state.draft, edit)


def _details(server: BookingServer, state: SessionState, form: dict[str, str]) -> Response:
    if not state.guest:
        raise HTTPError(403, "Sign in or continue as guest first.")
    r, *_ = _slot(server.site, state, form)
    values = {k: form.get(k, "") for k in SLOT_FIELDS + DETAIL_FIELDS}
    values = {k: (v.strip() if k != "request" else v)[:MAX_FIELD_CHARS + 1] for k, v in values.items()}
    state.draft = values
    state.errors = validate_details(values, r)
    if state.errors:
        return Response(303, location="/book?" + urlencode({k: values[k] for k in SLOT_FIELDS}))
    return Response(303, location="/book/review")


def _confirm(server: BookingServer, state: SessionState, form: dict[str, str]) -> Response:
    if not state.draft or state.errors:
        raise HTTPError(400, "There is no completed booking form to confirm.")
    draft = state.draft
    _slot(server.site, state, draft)  # still free?
    booking = Booking(number=reservation_number(state, draft), rid=draft["rid"], date=draft["date"],
                      time=parse_time(draft["time"]), party_size=int(draft["party"]),
                      first_name=draft["first_name"], last_name=draft["last_name"], phone=draft["phone"],
                      email=draft["email"], seating=draft.get("seating", ""), occasion=draft.get("occasion", ""),
                      request=draft.get("request", ""))
    state.bookings.append(booking)
    state.draft, state.errors = {}, {}
    return Response(303, location=f"/confirmation/{booking.number}")


def _signin(server: BookingServer, state: SessionState, form: dict[str, str]) -> Response:
    state.signin_failed = True
    return Response(303, location=safe_next(form.get("next")))


def _answer(attr: str, choices: tuple[str, ...]) -> Callable[[BookingServer, SessionState, dict], Response]:
    def answer(server: BookingServer, state: SessionState, params: dict[str, str]) -> Response:
        choice = params.get("choice", choices[0])
        if choice not in choices:
            raise HTTPError(400, f"Unknown choice {choice[:40]!r}.")
        setattr(state, attr, True if attr == "guest" else choice)
        return Response(303, location=safe_next(params.get("next")))

    return answer


_GET = ("/", "/search", "/book", "/book/review", "/reservations")
_ACTIONS = {"/consent": _answer("consent", ("accept", "reject")), "/promo": _answer("promo", ("dismiss", "join")),
            "/guest": _answer("guest", ("guest",))}
_POST = {"/book/details": _details, "/book/confirm": _confirm, "/signin": _signin}


def _html(server: BookingServer, state: SessionState, title: str, body: str) -> Response:
    goal = None
    if server.show_goal and state.goal_id is not None:
        goal = server.goals[state.goal_id].instruction
    return Response(200, pages.layout(title, body, goal))


# -- HTTP -------------------------------------------------------------------------------

class _BookingHandler(SiteHandler):
    site: BookingServer
    cookie_name = SESSION_COOKIE

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self._serve("POST")

    def _serve(self, method: str) -> None:
        try:
            parts = urlsplit(self.path)
            params = dict(parse_qsl(parts.query, keep_blank_values=True, max_num_fields=50))
            form = self._form()  # read on GET too: an unread body would poison the kept-alive connection
            if parts.path == "/favicon.ico":  # asked for by the browser itself, after any page and
                # late: never a session (a new one's cookie would replace the one an env just set)
                return self._send(Response(404, "no favicon"))
            sid = self.session_cookie()
            if parts.path == "/new" or self.site._session(sid) is None:
                return self._new_session(parts.path, params)
            response = self.site.handle(sid, method, parts.path, form if method == "POST" else params)
        except HTTPError as e:
            response = Response(e.status, pages.layout("Error", pages.message_page("Sorry", str(e))))
        except ValueError as e:  # malformed query string or form (too many fields, bad encoding)
            response = Response(400, pages.layout("Error", pages.message_page("Sorry", f"Bad request: {e}")))
        self._send(response)

    def _form(self) -> dict[str, str]:
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            self.close_connection = True  # the rest of the body stays unread
            raise HTTPError(413, "The form is too large.")
        body = self.rfile.read(int(length)).decode("utf-8", errors="replace")
        return dict(parse_qsl(body, keep_blank_values=True, max_num_fields=50))

    def _new_session(self, path: str, params: dict[str, str]) -> None:
        goal = params.get("goal_id")
        if goal is not None and not goal.isdigit():
            raise HTTPError(400, "goal_id must be a number.")
        sid = self.site.new_session(int(goal) if goal is not None else None) if (
            goal is None or int(goal) < len(self.site.goals)) else None
        if sid is None:
            raise HTTPError(400, f"goal_id out of range ({len(self.site.goals)} goals).")
        target = "/" if path == "/new" or self.command == "POST" else self.path
        self._send(Response(303, location=target), cookie=sid)

    def _send(self, response: Response, cookie: str | None = None) -> None:
        self.send_text(response.status, response.body, location=response.location, cookie=cookie)


# -- the `webgrove booking serve` command -----------------------------------------------

@dataclass
class BookingServeConfig:
    """Serve the booking site for a person to use in their own browser.

    /new starts a fresh session; /new?goal_id=N shows goal N of the split on every page.
    """

    port: int = field(default=8080, metadata={"help": "port to listen on (0: any free port)"})
    seed: int = field(default=0, metadata={"help": "seed of the generated restaurants and goals"})
    num_restaurants: int = field(default=300, metadata={"help": "restaurants on the site"})
    split: str = field(default="test", metadata={
        "help": "goal split /new?goal_id=N refers to", "choices": ["train", "test"]})

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ValueError(f"port must be in 0..65535, not {self.port}")
        if self.num_restaurants < 20:
            raise ValueError(f"--num-restaurants must be at least 20, not {self.num_restaurants}")


def run_booking_serve(config: BookingServeConfig) -> int:
    site = BookingSite(config.seed, config.num_restaurants)
    try:
        server = BookingServer(site, split=config.split, port=config.port, show_goal=True, start=False)
    except OSError as e:
        raise ValueError(f"cannot listen on 127.0.0.1:{config.port}: {e.strerror or e}") from e
    server.serve_until_interrupted(
        f"{pages.SITE_NAME}: {len(site.restaurants)} restaurants at {server.url} ({len(server.goals)} "
        f"{config.split} goals; {server.url}new?goal_id=N starts goal N). Ctrl-C stops.")
    return 0
