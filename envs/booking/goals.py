"""Booking goals: what to book, as a target and as a natural-language instruction.

Three kinds:
- "specified": everything is named ("book a table for 4 at Trattoria Golden Fig on
  Friday 13 March at 7:30 pm, outdoor seating, under the name ...").
- "earliest": search and judgement ("the earliest table at or after 7:00 pm for two at
  an Italian place in North Beach rated at least 4.5"); every restaurant that fits and
  has that earliest table is accepted.
- "best_rated": the highest-rated place of a cuisine in a neighbourhood with a free
  table at a given time.

Goal i of a split is drawn from its own RNG seeded by (seed, split, i), so splits are
the same on every machine and a longer split only adds goals.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from webgrove.envs.booking.data import (OCCASIONS, Restaurant, bookable_dates, format_time, free_slots,
                                        generate_restaurants, iso_time)

SPLIT_SIZES = {"train": 1000, "test": 200}
KINDS = ("specified", "earliest", "best_rated")
SLOT_WINDOW = (-60, 90)  # a restaurant page shows free times from t-60 to t+90 minutes
_FIRST_NAMES = ("Ana", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal",
                "Kira", "Leo", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tariq")
_LAST_NAMES = ("Lopez", "Nguyen", "Okafor", "Schmidt", "Tanaka", "Rossi", "Patel", "Kim", "Dubois",
               "Haddad", "Silva", "Novak", "Walsh", "Moreau", "Cohen", "Larsen", "Bianchi", "Reyes")
_REQUESTS = ("high chair needed", "window table if possible", "gluten-free options please",
             "wheelchair access", "quiet corner please", "we may be 10 minutes late")
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                 "ten", "eleven", "twelve")


@dataclass(frozen=True)
class BookingGoal:
    """A booking to make and the instruction that asks for it.

    Attributes:
        restaurant_ids: the restaurants that satisfy the goal (one for "specified").
        date: ISO date; time: minutes after midnight; search_time: the time named in
            the instruction ("at or after" for "earliest" goals).
        seating, occasion, request: None when the goal does not ask for one (then any
            value is accepted).
    """

    goal_id: int
    split: str
    kind: str
    instruction: str
    restaurant_ids: tuple[str, ...]
    date: str
    time: int
    search_time: int
    party_size: int
    first_name: str
    last_name: str
    phone: str
    email: str
    seating: str | None = None
    occasion: str | None = None
    request: str | None = None

    def required_fields(self) -> tuple[str, ...]:
        """The fields a booking must match, in the evaluator's order."""
        fields = ["restaurant", "date", "time", "party_size", "name", "phone", "email"]
        fields += [f for f in ("seating", "occasion", "request") if getattr(self, f) is not None]
        return tuple(fields)


@lru_cache(maxsize=8)
def split_goals(split: str, seed: int = 0, num_restaurants: int = 300,
                size: int | None = None) -> tuple[BookingGoal, ...]:
    """The goals of a split ("train" or "test"), the same on every machine."""
    if split not in SPLIT_SIZES:
        raise ValueError(f"split must be one of {', '.join(SPLIT_SIZES)}, not {split!r}")
    restaurants = generate_restaurants(seed, num_restaurants)
    n = SPLIT_SIZES[split] if size is None else size
    return tuple(make_goal(restaurants, seed, split, i) for i in range(n))


def make_goal(restaurants: tuple[Restaurant, ...], seed: int, split: str, goal_id: int) -> BookingGoal:
    rng = random.Random(f"webgrove-booking-goal-{seed}-{split}-{goal_id}")
    kind = KINDS[goal_id % len(KINDS)] if rng.random() < 0.9 else "specified"
    for _ in range(200):
        target = _target(kind, restaurants, seed, rng)
        if target is not None:
            break
    else:  # pragma: no cover - never seen with 300 restaurants
        kind, target = "specified", _target("specified", restaurants, seed, rng)
    rids, d, time, search_time, party, clause = target
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    by_id = {r.rid: r for r in restaurants}
    seating_choices = set.intersection(*(set(by_id[r].seating_areas) for r in rids))
    seating = rng.choice(sorted(seating_choices)) if rng.random() < 0.4 else None
    occasion = rng.choice(OCCASIONS) if rng.random() < 0.4 else None
    request = rng.choice(_REQUESTS) if rng.random() < 0.3 else None
    phone = f"415-555-{rng.randrange(10000):04d}"
    goal = BookingGoal(goal_id, split, kind, "", tuple(rids), d.isoformat(), time, search_time, party,
                       first, last, phone, f"{first}.{last}@example.com".lower(), seating, occasion, request)
    instruction = phrase(goal, clause, rng)
    return BookingGoal(**{**goal.__dict__, "instruction": instruction})


def _target(kind: str, restaurants: tuple[Restaurant, ...], seed: int, rng: random.Random):
    """(restaurant ids, date, time, search time, party, restaurant clause) or None to redraw."""
    d = rng.choice(bookable_dates())
    party = rng.choice((1, 2, 2, 2, 3, 4, 4, 5, 6, 8))
    if kind == "specified":
        r = rng.choice(restaurants)
        free = free_slots(r, d, party, seed)
        if not free:
            return None
        time = rng.choice(free)
        return (r.rid,), d, time, time, party, ("at", r.name)
    anchor = rng.choice(restaurants)
    fits = [r for r in restaurants if r.cuisine == anchor.cuisine and r.neighbourhood == anchor.neighbourhood]
    min_rating = rng.choice((None, 4.0, 4.5)) if kind == "earliest" else None
    fits = [r for r in fits if min_rating is None or r.rating >= min_rating]
    search_time = rng.choice((18 * 60, 18 * 60 + 30, 19 * 60, 19 * 60 + 30, 20 * 60))
    clause = ("place", anchor.cuisine, anchor.neighbourhood, min_rating)
    if kind == "earliest":
        firsts = {r.rid: next((m for m in free_slots(r, d, party, seed) if m >= search_time), None)
                  for r in fits}
        times = [m for m in firsts.values() if m is not None]
        if not times or min(times) > search_time + SLOT_WINDOW[1]:
            return None
        time = min(times)
        return tuple(sorted(rid for rid, m in firsts.items() if m == time)), d, time, search_time, party, clause
    free = [r for r in fits if search_time in free_slots(r, d, party, seed)]
    if not free:
        return None
    best = max(r.rating for r in free)
    if sum(r.rating == best for r in free) > 1:
        return None  # a tie would make "the highest-rated" ambiguous to a reader
    rids = tuple(r.rid for r in free if r.rating == best)
    return rids, d, search_time, search_time, party, clause


# -- phrasing ---------------------------------------------------------------------------

def phrase(goal: BookingGoal, clause: tuple, rng: random.Random) -> str:
    """The instruction for a goal, in one of many phrasings drawn from rng."""
    d = date.fromisoformat(goal.date)
    when = _date_phrase(d, rng)
    party = _party_phrase(goal.party_size, rng)
    if goal.kind == "specified":
        core = rng.choice((
            f"Book a table {party} at {clause[1]} {when} at {_time_phrase(goal.time, rng)}",
            f"Reserve {clause[1]} {when}, {_time_phrase(goal.time, rng)}, {party}",
            f"I need a reservation {party} at {clause[1]} {when} at {_time_phrase(goal.time, rng)}",
            f"Get us a table at {clause[1]} {party}, {when} at {_time_phrase(goal.time, rng)}",
        ))
    else:
        _, cuisine, hood, min_rating = clause
        place = f"{'an' if cuisine[0] in 'AEIOU' else 'a'} {cuisine} place in {hood}"
        rated = f" rated at least {min_rating}" if min_rating else ""
        at = _time_phrase(goal.search_time, rng)
        if goal.kind == "earliest":
            core = rng.choice((
                f"Book the earliest table at or after {at} {party} at {place}{rated} {when}",
                f"Find {place}{rated} and reserve the first free table from {at} on, {when}, {party}",
            ))
        else:
            core = rng.choice((
                f"Book the highest-rated {cuisine} place in {hood} that has a table {party} {when} at {at}",
                f"{when[0].upper()}{when[1:]} at {at}, {party}: reserve the best-rated {cuisine} restaurant "
                f"in {hood} with a free table",
            ))
    extras = _extras(goal, rng)
    rng.shuffle(extras)
    return ". ".join([core] + extras) + "."


def _extras(goal: BookingGoal, rng: random.Random) -> list[str]:
    name = f"{goal.first_name} {goal.last_name}"
    parts = [rng.choice((f"Put it under the name {name}", f"The reservation is for {name}",
                         f"Name: {name}")),
             rng.choice((f"phone {goal.phone}", f"my number is {goal.phone}", f"Phone: {goal.phone}")),
             rng.choice((f"email {goal.email}", f"Email: {goal.email}", f"use the email {goal.email}"))]
    if goal.seating:
        parts.append(rng.choice((f"{goal.seating.lower()} seating", f"we'd like to sit {_seat(goal.seating)}",
                                 f"Seating: {goal.seating}")))
    if goal.occasion:
        parts.append(rng.choice((f"it's a {goal.occasion.lower()}", f"Occasion: {goal.occasion}",
                                 f"the occasion is {goal.occasion.lower()}")))
    if goal.request:
        parts.append(rng.choice((f"add the note '{goal.request}'", f"special request: '{goal.request}'")))
    return parts


def _seat(area: str) -> str:
    return {"Indoor": "indoors", "Outdoor": "outdoors", "Bar": "at the bar", "Counter": "at the counter"}[area]


def _date_phrase(d: date, rng: random.Random) -> str:
    day = d.strftime("%A")
    month = d.strftime("%B")
    return rng.choice((f"on {day} {d.day} {month}", f"on {month} {d.day}", f"on {d.day} {month}",
                       f"on {day[:3]}, {month[:3]} {d.day}", f"on {d.isoformat()}"))


def _time_phrase(minutes: int, rng: random.Random) -> str:
    return rng.choice((format_time(minutes), iso_time(minutes), format_time(minutes).replace(" ", "")))


def _party_phrase(n: int, rng: random.Random) -> str:
    if n == 1:
        return rng.choice(("for one", "for 1 person", "for just me"))
    return rng.choice((f"for {n}", f"for {_NUMBER_WORDS[n]} people", f"for a party of {n}",
                       f"for {n} guests"))
