"""The booking site without a browser: data, goals, evaluator, and the HTTP server."""
import hashlib
import http.client
import re
from dataclasses import replace
from datetime import date
from urllib.parse import urlencode

import pytest

from webgrove.envs.booking.data import TODAY, free_slots, generate_restaurants, is_available
from webgrove.envs.booking.goals import split_goals
from webgrove.envs.booking.reward import Booking, booking_reward
from webgrove.envs.booking.server import SESSION_COOKIE, BookingServer

# sha256 of the test split's instructions joined by newlines: the splits must be the same everywhere.
TEST_SPLIT_SHA256 = "399f5f86a86a372ffa07b012c7cf2ba3edb46a606433804639167ca870b4585c"


def test_restaurants_are_deterministic_and_complete():
    a, b = generate_restaurants(0, 300), generate_restaurants(0, 300)
    assert a == b and len(a) == 300
    assert len({r.name for r in a}) == 300
    assert generate_restaurants(1, 300) != a
    r = a[0]
    assert r.cuisine and r.neighbourhood and 1 <= r.price_level <= 4 and 3.0 <= r.rating <= 5.0
    assert r.description and len(r.menu_highlights) == 3 and "Indoor" in r.seating_areas and len(r.hours) == 7


def test_availability_depends_on_date_time_and_party():
    restaurants = generate_restaurants(0, 300)
    day = date(2026, 3, 13)
    counts = {party: sum(len(free_slots(r, day, party)) for r in restaurants) for party in (2, 6, 10)}
    assert counts[2] > counts[6] > counts[10] > 0
    weekday = sum(len(free_slots(r, date(2026, 3, 10), 2)) for r in restaurants)
    weekend = sum(len(free_slots(r, date(2026, 3, 14), 2)) for r in restaurants)
    assert weekday != weekend
    r = next(r for r in restaurants if free_slots(r, day, 4))
    m = free_slots(r, day, 4)[0]
    assert is_available(r, day, m, 2)  # free for 4 means free for 2
    assert not is_available(r, day, m, 4, taken=frozenset({(r.rid, day.isoformat(), m)}))


def test_splits_are_fixed_and_varied():
    test = split_goals("test")
    assert len(test) == 200 and len(split_goals("train")) == 1000
    digest = hashlib.sha256("\n".join(g.instruction for g in test).encode()).hexdigest()
    assert digest == TEST_SPLIT_SHA256
    assert {g.kind for g in test} == {"specified", "earliest", "best_rated"}
    assert len({g.instruction for g in test}) == 200
    assert not {g.instruction for g in test} & {g.instruction for g in split_goals("train")}
    openings = {" ".join(g.instruction.split()[:2]) for g in test}
    assert len(openings) >= 8  # many phrasings


def _right(goal) -> Booking:
    return Booking("TF-1", goal.restaurant_ids[0], goal.date, goal.time, goal.party_size, goal.first_name,
                   goal.last_name, goal.phone, goal.email, goal.seating or "", goal.occasion or "",
                   goal.request or "")


def test_evaluator_on_hand_made_bookings():
    goal = next(g for g in split_goals("test") if g.seating and g.occasion)
    right = _right(goal)
    reward, info = booking_reward(goal, [right])
    assert reward == 1.0 and info["success"] and all(info["fields"].values())
    wrong = {"date": "2026-04-01", "time": goal.time + 15, "party_size": goal.party_size + 1,
             "first_name": "Zed", "phone": "415-555-9999", "email": "x@example.com", "seating": "",
             "occasion": ""}
    n_other = len(goal.required_fields()) - 1
    for name, value in wrong.items():
        reward, info = booking_reward(goal, [replace(right, **{name: value})])
        assert not info["success"] and reward == pytest.approx((n_other - 1) / n_other), name
    reward, info = booking_reward(goal, [replace(right, rid="r999")])
    assert reward == pytest.approx(0.1) and info["fields"]["restaurant"] is False
    reward, info = booking_reward(goal, [right, right])
    assert reward == 0.5 and info["double_booking"] and not info["success"]
    assert booking_reward(goal, []) == (0.0, {"bookings": 0, "double_booking": False, "r_restaurant": 0.0,
                                              "r_fields": 0.0, "success": False, "fields": {}})
    # formatting that means the same thing still matches
    same = replace(right, phone="(415) 555 " + goal.phone[-4:], first_name=goal.first_name.upper())
    assert booking_reward(goal, [same])[1]["success"]


class Client:
    """One diner: a kept-alive connection and a session cookie."""

    def __init__(self, server: BookingServer, goal_id: int = 0) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        self.sid = server.new_session(goal_id)

    def request(self, method: str, path: str, form: dict | None = None, body: str | None = None):
        headers = {"Cookie": f"{SESSION_COOKIE}={self.sid}",
                   "Content-Type": "application/x-www-form-urlencoded"}
        data = body if body is not None else (urlencode(form) if form is not None else None)
        self.conn.request(method, path, body=data, headers=headers)
        r = self.conn.getresponse()
        return r.status, r.getheader("Location"), r.read().decode()

    def get(self, path: str):
        return self.request("GET", path)

    def book(self, goal, **changes) -> tuple[int, str | None, str]:
        self.get("/consent?choice=accept")
        self.get("/guest")
        form = {"rid": goal.restaurant_ids[0], "date": goal.date, "time": f"{goal.time // 60:02d}:{goal.time % 60:02d}",
                "party": str(goal.party_size), "first_name": goal.first_name, "last_name": goal.last_name,
                "phone": goal.phone, "email": goal.email, "occasion": goal.occasion or "",
                "seating": goal.seating or "", "request": goal.request or "", **changes}
        status, location, _ = self.request("POST", "/book/details", form)
        if location != "/book/review":
            return status, location, self.get(location)[2]
        return self.request("POST", "/book/confirm", {})


@pytest.fixture(scope="module")
def server():
    with BookingServer(split="test") as s:
        yield s


def test_sessions_are_isolated(server):
    goal = server.goals[0]
    a, b = Client(server, 0), Client(server, 0)
    status, location, _ = a.book(goal)
    assert status == 303 and location.startswith("/confirmation/TF-")
    assert len(server.bookings(a.sid)) == 1 and server.bookings(b.sid) == []
    b.get("/consent?choice=accept")
    assert "No reservations yet" in b.get("/reservations")[2]
    assert location.split("/")[-1] in a.get("/reservations")[2]
    assert b.get(location)[0] == 404  # b cannot see a's confirmation
    # the slot a took is still free for b
    assert b.book(goal)[1].startswith("/confirmation/")


def test_binds_loopback_and_serves_only_its_routes(server):
    assert server.url.startswith("http://127.0.0.1:")
    c = Client(server)
    c.get("/consent?choice=accept")
    for path in ("/../../etc/passwd", "/etc/passwd", "/r/../../x", "/static/x.js", "/r/r999", "/confirmation/x"):
        assert c.get(path)[0] == 404, path
    assert c.request("PUT", "/")[0] == 501
    assert c.request("POST", "/search", {})[0] == 405
    # redirects never leave the site
    for target in ("https://evil.example/", "//evil.example/", "/\\evil"):
        assert c.get("/consent?" + urlencode({"choice": "accept", "next": target}))[1] == "/"


def test_bad_input_is_refused_and_loses_nothing(server):
    goal = server.goals[1]
    c = Client(server, 1)
    status, _, page = c.book(goal, phone="call me", email="nope", first_name="", seating="Rooftop",
                             occasion="<script>")
    assert status == 303 and "Please fix 5 errors" in page
    assert "Enter a phone number with 10 digits" in page and "<script>" not in page
    assert 'value="call me"' in page  # what was typed is kept
    assert c.request("POST", "/book/confirm", {})[0] == 400  # an invalid draft cannot be confirmed
    assert c.book(goal)[1].startswith("/confirmation/")
    for path in ("/search?date=2030-01-01", "/search?time=19:07", "/search?party=0", "/search?party=x",
                 "/search?sort=evil", "/?cal=2026-13", "/book?rid=r001&date=bad&time=19:00&party=2",
                 "/search?" + "&".join(f"k{i}=v" for i in range(60))):
        assert c.get(path)[0] == 400, path
    assert c.book(goal)[0] == 409  # the same table twice
    assert c.request("POST", "/book/details", body="x" * 70_000)[0] == 413
    c.conn.close()  # the server closes after a 413; reconnect, same session
    assert c.request("POST", "/book/details", body="%ZZ&&==\x00")[0] == 400
    assert len(server.bookings(c.sid)) == 1  # the first booking survived it all
    assert c.get("/")[0] == 200


def test_pages_show_the_widgets(server):
    goal = next(g for g in server.goals if g.kind == "earliest" and g.time != g.search_time)
    c = Client(server)
    assert 'aria-label="Cookies"' in c.get("/")[2]
    c.get("/consent?choice=accept")
    home = c.get(f"/?date={TODAY.isoformat()}&cal=2026-03")[2]
    assert "Next month" in home and 'aria-label="Friday, 13 March 2026"' in home
    rid = goal.restaurant_ids[0]
    query = urlencode({"date": goal.date, "time": f"{goal.search_time // 60:02d}:{goal.search_time % 60:02d}",
                       "party": goal.party_size})
    assert "TableFinder Rewards" in c.get(f"/r/{rid}?{query}")[2]  # the modal first
    c.get("/promo?choice=dismiss")
    page = c.get(f"/r/{rid}?{query}")[2]
    assert re.search(r"No table at \d+:\d\d [ap]m — .*\?", page)
    results = c.get("/search?location=" + goal_location(server, rid) + "&sort=rating")[2]
    assert "Apply filters" in results and "Showing 1 to" in results


def goal_location(server, rid):
    return server.site.by_id[rid].neighbourhood.replace(" ", "+")


def test_snapshot_restores_an_identical_session(server):
    goal = server.goals[2]
    c = Client(server, 2)
    c.book(goal)
    c.get(f"/book?rid={goal.restaurant_ids[0]}&date={goal.date}&time=19:00&party=2")
    snap = server.snapshot(c.sid)
    fork = server.restore(snap)
    assert server.snapshot(fork) == snap and fork != c.sid
    d = Client(server)
    d.sid = fork
    for path in ("/reservations", "/", "/search?q=a"):
        assert d.get(path) == c.get(path)
    d.book(goal, time="23:45")  # acting in the fork leaves the original alone
    assert server.snapshot(c.sid) == snap
    with pytest.raises(ValueError):
        server.restore({"version": 99})


def test_the_browsers_own_favicon_request_never_starts_a_session(server):
    """A browser asks for /favicon.ico after each page, late; with the cookie of a session an env
    has just ended, it must not get a new session's cookie (it would replace the one the env set
    for a restored state, and the restored page would show the cookie banner)."""
    c = Client(server)
    server.end_session(c.sid)
    c.conn.request("GET", "/favicon.ico", headers={"Cookie": f"{SESSION_COOKIE}={c.sid}"})
    r = c.conn.getresponse()
    r.read()
    assert r.status == 404 and r.getheader("Set-Cookie") is None
    assert c.get("/")[0] == 303  # a page request with the ended session still starts a new one
