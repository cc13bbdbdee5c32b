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
