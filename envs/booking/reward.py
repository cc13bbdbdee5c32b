"""The booking reward, computed from the server's booking records (never from page text).

In WebShop's shape (r_type x matched / required): a gate for the restaurant (1 when
the booked restaurant satisfies the goal, 0.1 otherwise, as WebShop's r_type for a
wrong product type) times the share of the other required fields that match
(date, time, party size, name, phone, email, and seating / occasion / request when
the goal asks for them). A session with two or more bookings is a double booking:
the first booking is scored and the reward halved. No booking scores 0. Success
means exactly one booking with every required field right.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from webgrove.envs.booking.data import parse_time
from webgrove.envs.booking.goals import BookingGoal

WRONG_RESTAURANT_GATE = 0.1
DOUBLE_BOOKING_FACTOR = 0.5


@dataclass(frozen=True)
class Booking:
    """One confirmed reservation, as the server records it."""

    number: str
    rid: str
    date: str
    time: int
    party_size: int
    first_name: str
    last_name: str
    phone: str
    email: str
    seating: str = ""
    occasion: str = ""
    request: str = ""


def normalize_text(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed."""
    return " ".join(re.findall(r"[a-z0-9@.]+", text.lower().replace("'", "")))


def phone_digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def field_matches(goal: BookingGoal, booking: Booking) -> dict[str, bool]:
    """Per required field, whether the booking has it right."""
    checks = {
        "restaurant": booking.rid in goal.restaurant_ids,
        "date": booking.date == goal.date,
        "time": booking.time == goal.time,
        "party_size": booking.party_size == goal.party_size,
        "name": (normalize_text(booking.first_name), normalize_text(booking.last_name))
        == (normalize_text(goal.first_name), normalize_text(goal.last_name)),
        "phone": phone_digits(booking.phone) == phone_digits(goal.phone),
        "email": booking.email.strip().lower() == goal.email.lower(),
        "seating": booking.seating == goal.seating,
        "occasion": booking.occasion == goal.occasion,
        "request": normalize_text(booking.request) == normalize_text(goal.request or ""),
    }
    return {f: checks[f] for f in goal.required_fields()}


def booking_reward(goal: BookingGoal, bookings: list[Booking]) -> tuple[float, dict[str, Any]]:
    """(reward in [0, 1], reward_info) for a session's bookings, oldest first."""
    info: dict[str, Any] = {"bookings": len(bookings), "double_booking": len(bookings) > 1}
    if not bookings:
        info.update(r_restaurant=0.0, r_fields=0.0, success=False, fields={})
        return 0.0, info
    matches = field_matches(goal, bookings[0])
    others = [ok for f, ok in matches.items() if f != "restaurant"]
    r_restaurant = 1.0 if matches["restaurant"] else WRONG_RESTAURANT_GATE
    r_fields = sum(others) / len(others)
    reward = r_restaurant * r_fields * (DOUBLE_BOOKING_FACTOR if len(bookings) > 1 else 1.0)
    info.update(r_restaurant=r_restaurant, r_fields=r_fields, fields=matches,
                success=len(bookings) == 1 and all(matches.values()), number=bookings[0].number)
    return reward, info


def booking_progress(goal: BookingGoal, path: str, params: dict[str, str], form: dict[str, str],
                     draft: dict[str, str], names: dict[str, str]) -> float:
    """Share of the goal's required fields (0 to 1) that the booking in progress has right
    as the evaluator judges them (`field_matches`), the name counting half a field per
    part. The booking in progress is the session's draft, overridden by the page URL's
    parameters (a restaurant page `/r/<rid>` names the restaurant), overridden by the
    values the page's forms hold, sent or not; a search text `q` that is the name of one
    of `names` (the goal's restaurants by id) names that restaurant."""
    values = {**draft, **params, **({"rid": path[3:]} if path.startswith("/r/") else {}), **form}
    return _fields_right(goal, values, names)


def _fields_right(goal: BookingGoal, values: dict[str, str], names: dict[str, str]) -> float:
    """Share of the goal's required fields that a booking of `values` (form field names) gets right."""
    party = values.get("party", "")
    searched = next((rid for rid, name in names.items() if normalize_text(values.get("q", "")) == normalize_text(name)), "")
    booking = Booking(number="", rid=values.get("rid") or searched, date=values.get("date", ""),
                      time=parse_time(values.get("time", "")) or -1, party_size=int(party) if party.isdigit() else 0,
                      **{k: values.get(k, "") for k in ("first_name", "last_name", "phone", "email", "seating",
                                                         "occasion", "request")})
    matches: dict[str, float] = {f: float(ok) for f, ok in field_matches(goal, booking).items()}
    if "name" in matches:
        matches["name"] = sum(normalize_text(getattr(booking, k)) == normalize_text(getattr(goal, k))
                              for k in ("first_name", "last_name")) / 2
    return sum(matches.values()) / len(matches)
