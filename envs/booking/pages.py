"""The booking site's pages: pure functions from (site, session, request) to HTML.

No page uses JavaScript: every widget is a link or a form, so a page is a function
of the URL and the session's state, and a restored session plus the URL gives back
the same page. Modals (the cookie banner, the rewards offer) hide the page behind
them: only the dialog is rendered until it is answered.
"""
from __future__ import annotations

import calendar
import html
from dataclasses import dataclass, replace
from datetime import date
from urllib.parse import urlencode

from webgrove.envs.booking.data import (CUISINES, MAX_PARTY, NEIGHBOURHOODS, OCCASIONS, SEARCH_TIMES, TODAY,
                                        WEEKDAYS, Restaurant, bookable_dates, format_date, format_time,
                                        iso_time)
from webgrove.envs.booking.goals import SLOT_WINDOW
from webgrove.envs.booking.reward import Booking

SITE_NAME = "TableFinder"
RESULTS_PER_PAGE = 10
SORTS = {"match": "Best match", "rating": "Highest rated", "name": "Name (A to Z)",
         "price": "Price (low to high)"}
RATINGS = {"": "Any rating", "4.0": "4.0 and up", "4.5": "4.5 and up"}
PRICES = {"": "Any price", "1": "$", "2": "$$", "3": "$$$", "4": "$$$$"}
e = html.escape


@dataclass(frozen=True)
class Query:
    """What a diner searches for: the home form, carried through results and restaurant pages."""

    q: str = ""
    location: str = ""
    date: date = TODAY
    time: int = 19 * 60
    party: int = 2
    cuisine: str = ""
    price: str = ""
    min_rating: str = ""
    sort: str = "match"
    page: int = 1

    def params(self, **changes: object) -> dict[str, str]:
        """URL parameters (defaults of the filters left out)."""
        query = replace(self, **changes) if changes else self
        out = {"q": query.q, "location": query.location, "date": query.date.isoformat(),
               "time": iso_time(query.time), "party": str(query.party)}
        for key in ("cuisine", "price", "min_rating"):
            if getattr(query, key):
                out[key] = getattr(query, key)
        if query.sort != "match":
            out["sort"] = query.sort
        if query.page != 1:
            out["page"] = str(query.page)
        return out

    def url(self, path: str, **changes: object) -> str:
        return f"{path}?{urlencode(self.params(**changes))}"


def slot_url(r: Restaurant, d: date, minutes: int, party: int) -> str:
    return "/book?" + urlencode({"rid": r.rid, "date": d.isoformat(), "time": iso_time(minutes),
                                 "party": str(party)})


def party_label(n: int) -> str:
    return "1 person" if n == 1 else f"{n} people"


# -- layout -----------------------------------------------------------------------------

def layout(title: str, body: str, goal: str | None = None) -> str:
    goal_box = f'<aside aria-label="Your goal"><p>Goal: {e(goal)}</p></aside>' if goal else ""
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(title)} | {SITE_NAME}</title><style>{_CSS}</style></head><body>"
            f'<header><a href="/">{SITE_NAME}</a> <nav aria-label="Account">'
            '<a href="/reservations">My reservations</a></nav></header>'
            f"{goal_box}<main>{body}</main></body></html>")


def modal(label: str, text: str, links: list[tuple[str, str]]) -> str:
    buttons = " ".join(f'<a class="button" href="{e(href)}">{e(name)}</a>' for name, href in links)
    return (f'<div role="dialog" aria-modal="true" aria-label="{e(label)}">'
            f"<h2>{e(label)}</h2><p>{e(text)}</p><p>{buttons}</p></div>")


def cookie_modal(next_url: str) -> str:
    def link(choice: str) -> str:
        return "/consent?" + urlencode({"choice": choice, "next": next_url})

    return modal("Cookies", "We use cookies to remember your searches and to improve the site.",
                 [("Accept all cookies", link("accept")), ("Reject non-essential", link("reject"))])


def promo_modal(next_url: str) -> str:
    def link(choice: str) -> str:
        return "/promo?" + urlencode({"choice": choice, "next": next_url})

    return modal("TableFinder Rewards", "Join TableFinder Rewards and earn 1,000 bonus points on this booking.",
                 [("Join now", link("join")), ("No thanks", link("dismiss"))])


def message_page(title: str, text: str, back: tuple[str, str] = ("Back to search", "/")) -> str:
    return f"<h1>{e(title)}</h1><p>{e(text)}</p><p><a href=\"{e(back[1])}\">{e(back[0])}</a></p>"


# -- form widgets -----------------------------------------------------------------------

def select(name: str, label: str, options: dict[str, str], value: str) -> str:
    opts = "".join(f'<option value="{e(k)}"{" selected" if k == value else ""}>{e(v)}</option>'
                   for k, v in options.items())
    return f'<label>{e(label)} <select name="{e(name)}">{opts}</select></label>'


def query_fields(query: Query, path: str, with_text: bool) -> str:
    """Date (with the calendar button), time and party size; the search box on the home page."""
    text = (f'<label>Restaurant or cuisine <input type="text" name="q" value="{e(query.q)}"></label>'
            + select("location", "Neighbourhood", {"": "Any neighbourhood", **{h: h for h in NEIGHBOURHOODS}},
                     query.location)) if with_text else (
        f'<input type="hidden" name="q" value="{e(query.q)}">'
        f'<input type="hidden" name="location" value="{e(query.location)}">')
    month = f"{query.date.year}-{query.date.month:02d}"
    return (text + f'<input type="hidden" name="date" value="{query.date.isoformat()}">'
            f"<p>Date: {e(format_date(query.date))} "
            f'<button type="submit" name="cal" value="{month}" formaction="{e(path)}">Change date</button></p>'
            + select("time", "Time", {iso_time(m): format_time(m) for m in SEARCH_TIMES}, iso_time(query.time))
            + select("party", "Party size", {str(n): party_label(n) for n in range(1, MAX_PARTY + 1)},
                     str(query.party)))


def calendar_widget(query: Query, path: str, month: tuple[int, int]) -> str:
    """A month grid: bookable days are links that set the date; month navigation links."""
    year, mon = month
    days = set(bookable_dates())
    first, last = min(days), max(days)
    head = "".join(f"<th scope=\"col\">{d[:3]}</th>" for d in WEEKDAYS)
    rows = []
    for week in calendar.Calendar().monthdatescalendar(year, mon):
        cells = []
        for d in week:
            if d.month != mon:
                cells.append("<td></td>")
            elif d in days:
                cells.append(f'<td><a href="{e(query.url(path, date=d))}" aria-label="{e(format_date(d))}">'
                             f"{d.day}</a></td>")
            else:
                cells.append(f'<td aria-disabled="true">{d.day}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    prev_m = (year, mon - 1) if mon > 1 else (year - 1, 12)
    next_m = (year, mon + 1) if mon < 12 else (year + 1, 1)
    nav = []
    if (first.year, first.month) <= prev_m:
        nav.append(_month_link(query, path, prev_m, "Previous month"))
    if next_m <= (last.year, last.month):
        nav.append(_month_link(query, path, next_m, "Next month"))
    nav.append(f'<a href="{e(query.url(path))}">Close calendar</a>')
    title = f"{calendar.month_name[mon]} {year}"
    return (f'<section aria-label="Choose a date"><h2>{title}</h2><p>{" ".join(nav)}</p>'
            f'<table role="grid" aria-label="{title}"><tr>{head}</tr>{"".join(rows)}</table></section>')


def _month_link(query: Query, path: str, month: tuple[int, int], label: str) -> str:
    params = query.params()
    params["cal"] = f"{month[0]}-{month[1]:02d}"
    return f'<a href="{e(path)}?{e(urlencode(params))}">{label}</a>'


# -- pages ------------------------------------------------------------------------------

def home_page(query: Query, month: tuple[int, int] | None) -> str:
    cal = calendar_widget(query, "/", month) if month else ""
    return ("<h1>Find a table</h1>"
            f'<form action="/search" method="get" role="search" aria-label="Find a table">'
            f'{query_fields(query, "/", with_text=True)}<button type="submit">Find a table</button></form>{cal}')


def results_page(query: Query, rows: list[tuple[Restaurant, list[int]]], total: int) -> str:
    filters = ("".join(f'<input type="hidden" name="{k}" value="{e(v)}">' for k, v in query.params().items()
                       if k in ("q", "location", "date", "time", "party"))
               + select("cuisine", "Cuisine", {"": "All cuisines", **{c: c for c in CUISINES}}, query.cuisine)
               + select("price", "Price", PRICES, query.price)
               + select("min_rating", "Rating", RATINGS, query.min_rating)
               + select("sort", "Sort by", SORTS, query.sort))
    where = f" in {query.location}" if query.location else ""
    head = (f"<h1>Restaurants{e(where)}</h1><p>{e(format_date(query.date))}, {format_time(query.time)}, "
            f"{party_label(query.party)}. <a href=\"{e(query.url('/'))}\">Change search</a></p>"
            f'<form action="/search" method="get" aria-label="Filters">{filters}'
            '<button type="submit">Apply filters</button></form>')
    if not rows:
        return head + "<p>No restaurants match your search.</p>"
    start = (query.page - 1) * RESULTS_PER_PAGE
    items = "".join(_result_item(query, r, slots) for r, slots in rows)
    pages = []
    if query.page > 1:
        pages.append(f'<a href="{e(query.url("/search", page=query.page - 1))}">Previous page</a>')
    if start + RESULTS_PER_PAGE < total:
        pages.append(f'<a href="{e(query.url("/search", page=query.page + 1))}">Next page</a>')
    return (head + f"<p>Showing {start + 1} to {start + len(rows)} of {total} restaurants</p>"
            f'<ol aria-label="Results">{items}</ol><nav aria-label="Pages">{" ".join(pages)}</nav>')


def _result_item(query: Query, r: Restaurant, slots: list[int]) -> str:
    link = f"/r/{r.rid}?" + urlencode({k: v for k, v in query.params().items() if k in ("date", "time", "party")})
    times = " ".join(f'<a class="slot" href="{e(slot_url(r, query.date, m, query.party))}" '
                     f'aria-label="{format_time(m)} at {e(r.name)}">{format_time(m)}</a>' for m in slots)
    return (f'<li><h2><a href="{e(link)}">{e(r.name)}</a></h2>'
            f"<p>{e(r.cuisine)} · {e(r.neighbourhood)} · {r.price} · rated {r.rating} ({r.reviews} reviews)</p>"
            f"<p>{times or 'No tables near this time'}</p></li>")


def restaurant_page(r: Restaurant, query: Query, free: list[int], month: tuple[int, int] | None) -> str:
    path = f"/r/{r.rid}"
    hours = r.hours[query.date.weekday()]
    form = (f'<form action="{path}" method="get" aria-label="Check availability">'
            f'{query_fields(query, path, with_text=False)}<button type="submit">Find times</button></form>')
    cal = calendar_widget(query, path, month) if month else ""
    return (f"<h1>{e(r.name)}</h1><p>{e(r.cuisine)} · {e(r.neighbourhood)} · {r.price} · rated {r.rating} "
            f"({r.reviews} reviews)</p><p>{e(r.description)}</p>"
            f"<h2>Menu highlights</h2><ul>{''.join(f'<li>{e(d)}</li>' for d in r.menu_highlights)}</ul>"
            f"<p>Seating areas: {', '.join(r.seating_areas)}. Parties of up to {r.max_party}.</p>"
            f"<p>Opening hours: {e(_hours_text(r))}</p>"
            f"<h2>Reserve</h2>{form}{cal}{_availability(r, query, free, hours)}")


def _availability(r: Restaurant, query: Query, free: list[int], hours: tuple[int, int] | None) -> str:
    if hours is None:
        return f"<p>Closed on {query.date.strftime('%A')}s. Please choose another date.</p>"
    if query.party > r.max_party:
        return f"<p>Online bookings take parties of up to {r.max_party}.</p>"
    t = query.time
    if t in free:
        head = f"<p>A table for {query.party} is available at {format_time(t)}.</p>"
    else:
        before = [m for m in free if m < t]
        after = [m for m in free if m > t]
        alts = before[-1:] + after[:1]
        if alts:
            links = " or ".join(f'<a href="{e(slot_url(r, query.date, m, query.party))}">{format_time(m)}</a>'
                                for m in alts)
            head = f"<p role=\"status\">No table at {format_time(t)} — {links}?</p>"
        else:
            head = f"<p role=\"status\">No tables for {query.party} on this day.</p>"
    shown = [m for m in free if t + SLOT_WINDOW[0] <= m <= t + SLOT_WINDOW[1]]
    buttons = "".join(f'<li><a class="slot" href="{e(slot_url(r, query.date, m, query.party))}">'
                      f"{format_time(m)}</a></li>" for m in shown)
    return head + (f'<h3>Available times</h3><ul aria-label="Available times">{buttons}</ul>' if shown else "")


def _hours_text(r: Restaurant) -> str:
    parts = []
    for day, hours in zip(WEEKDAYS, r.hours):
        parts.append(f"{day[:3]} closed" if hours is None
                     else f"{day[:3]} {format_time(hours[0])} to {format_time(hours[1])}")
    return "; ".join(parts) + " (last seating)."


def signin_page(next_url: str, failed: bool) -> str:
    error = ('<p role="alert">Sign-in is not available right now. Please continue as guest.</p>'
             if failed else "")
    return ("<h1>Sign in to complete your reservation</h1>" + error +
            '<form action="/signin" method="post" aria-label="Sign in">'
            f'<input type="hidden" name="next" value="{e(next_url)}">'
            '<label>Email <input type="email" name="email"></label>'
            '<label>Password <input type="password" name="password"></label>'
            '<button type="submit">Sign in</button></form>'
            f'<p><a href="/guest?{e(urlencode({"next": next_url}))}">Continue as guest</a></p>')


def slot_summary(r: Restaurant, d: date, minutes: int, party: int) -> str:
    return f"{r.name} · {format_date(d)} · {format_time(minutes)} · {party_label(party)}"


def details_page(r: Restaurant, d: date, minutes: int, party: int, values: dict[str, str],
                 errors: dict[str, str]) -> str:
    def text_field(name: str, label: str, kind: str = "text") -> str:
        err = errors.get(name)
        desc = f' aria-invalid="true" aria-describedby="err-{name}"' if err else ""
        msg = f'<span class="error" id="err-{name}">{e(err)}</span>' if err else ""
        return (f'<label>{label} <input type="{kind}" name="{name}" value="{e(values.get(name, ""))}"{desc}>'
                f"</label>{msg}")

    seating = "".join(
        f'<label><input type="radio" name="seating" value="{e(v)}"'
        f'{" checked" if values.get("seating", "") == v else ""}> {e(v or "No preference")}</label>'
        for v in ("", *r.seating_areas))
    summary = f'<p role="alert">Please fix {len(errors)} error{"s" if len(errors) != 1 else ""}.</p>' if errors else ""
    hidden = "".join(f'<input type="hidden" name="{k}" value="{e(v)}">' for k, v in
                     (("rid", r.rid), ("date", d.isoformat()), ("time", iso_time(minutes)), ("party", str(party))))
    request_err = errors.get("request")
    return (f"<h1>Complete your reservation</h1><p>{e(slot_summary(r, d, minutes, party))}</p>{summary}"
            f'<form action="/book/details" method="post" novalidate aria-label="Your details">{hidden}'
            + text_field("first_name", "First name") + text_field("last_name", "Last name")
            + text_field("phone", "Phone", "tel") + text_field("email", "Email", "email")
            + select("occasion", "Occasion", {"": "None", **{o: o for o in OCCASIONS}}, values.get("occasion", ""))
            + f'<fieldset><legend>Seating preference</legend>{seating}</fieldset>'
            f'<label>Special request <textarea name="request">{e(values.get("request", ""))}</textarea></label>'
            + (f'<span class="error" id="err-request">{e(request_err)}</span>' if request_err else "")
            + '<button type="submit">Continue to review</button></form>'
            f'<p><a href="/r/{r.rid}?{urlencode({"date": d.isoformat(), "time": iso_time(minutes), "party": party})}">'
            "Choose another time</a></p>")


def review_page(r: Restaurant, d: date, minutes: int, party: int, values: dict[str, str], edit_url: str) -> str:
    rows = [("Restaurant", r.name), ("Date", format_date(d)), ("Time", format_time(minutes)),
            ("Party size", party_label(party)), ("Name", f"{values['first_name']} {values['last_name']}"),
            ("Phone", values["phone"]), ("Email", values["email"]),
            ("Occasion", values.get("occasion") or "None"),
            ("Seating preference", values.get("seating") or "No preference"),
            ("Special request", values.get("request") or "None")]
    table = "".join(f"<tr><th scope=\"row\">{k}</th><td>{e(v)}</td></tr>" for k, v in rows)
    return ("<h1>Review your reservation</h1>"
            f'<table aria-label="Reservation details">{table}</table>'
            '<form action="/book/confirm" method="post" aria-label="Confirm">'
            '<button type="submit">Confirm reservation</button></form>'
            f'<p><a href="{e(edit_url)}">Edit details</a></p>')


def confirmation_page(b: Booking, r: Restaurant) -> str:
    return (f"<h1>You're booked!</h1><p>Reservation number: <strong>{e(b.number)}</strong></p>"
            f"<p>{e(slot_summary(r, date.fromisoformat(b.date), b.time, b.party_size))}</p>"
            f"<p>Under the name {e(b.first_name)} {e(b.last_name)}. A confirmation was sent to {e(b.email)}.</p>"
            '<p><a href="/">Make another reservation</a> <a href="/reservations">My reservations</a></p>')


def reservations_page(rows: list[tuple[Booking, Restaurant]]) -> str:
    items = "".join(f"<li>{e(b.number)}: {e(slot_summary(r, date.fromisoformat(b.date), b.time, b.party_size))}"
                    "</li>" for b, r in rows)
    return "<h1>My reservations</h1>" + (f"<ul>{items}</ul>" if items else "<p>No reservations yet.</p>")


_CSS = ("body{font-family:sans-serif;max-width:60em;margin:auto}header{display:flex;gap:2em}"
        "[role=dialog]{border:2px solid #333;padding:1em;background:#fff}.error{color:#b00}"
        "a.button,a.slot{border:1px solid #333;padding:.2em .5em;margin:.2em;display:inline-block}"
        "label{display:block;margin:.3em 0}")
