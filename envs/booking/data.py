"""Restaurants and their availability, generated deterministically from a seed.

Everything here is a pure function of (seed, size): the same restaurants, opening
hours and free tables on every machine. Availability of a slot depends on the
date (weekends are busier), the time (7-8:30 pm is the peak) and the party size
(large tables are scarce); bookings made in a session take their slot away.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

TODAY = date(2026, 3, 2)  # the site's "today" (a Monday): dates are fixed so goals never expire
BOOKING_DAYS = 56  # dates from TODAY to TODAY + 55 can be booked
SLOT_MINUTES = 15
SEARCH_TIMES = tuple(range(11 * 60, 22 * 60 + 31, SLOT_MINUTES))  # 11:00 am .. 10:30 pm
MAX_PARTY = 12
CITY = "San Francisco"
NEIGHBOURHOODS = ("North Beach", "Mission", "SoMa", "Hayes Valley", "Marina", "Nob Hill", "Castro",
                  "Chinatown", "Inner Richmond", "Outer Sunset", "Financial District", "Russian Hill")
CUISINES = ("Italian", "French", "Japanese", "Mexican", "Chinese", "Indian", "Thai", "American",
            "Mediterranean", "Spanish", "Korean", "Vietnamese", "Seafood", "Steakhouse", "Greek")
SEATING_AREAS = ("Indoor", "Outdoor", "Bar", "Counter")
OCCASIONS = ("Birthday", "Anniversary", "Date night", "Business meal", "Celebration")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_FIRST = ("Golden", "Little", "Blue", "Old", "Silver", "Green", "Wild", "Red", "Hidden", "Copper",
          "Salty", "Lucky", "Quiet", "Bright", "Velvet", "Olive", "Iron", "Crimson", "Amber", "Cedar")
_SECOND = ("Fig", "Lantern", "Harbor", "Garden", "Table", "Oak", "Kitchen", "Spoon", "Vine", "Ember",
           "Pearl", "Fox", "Orchard", "Anchor", "Saffron", "Basil", "Hearth", "Tide", "Juniper", "Ladle")
_STYLE = {
    "Italian": ("Trattoria", "Osteria", "Cucina"), "French": ("Bistro", "Brasserie", "Maison"),
    "Japanese": ("Izakaya", "Sushi", "Ramen"), "Mexican": ("Taqueria", "Cantina", "Cocina"),
    "Chinese": ("Dim Sum", "Noodle House", "Palace"), "Indian": ("Tandoor", "Masala", "Curry House"),
    "Thai": ("Thai Kitchen", "Basil", "Street Thai"), "American": ("Grill", "Diner", "Tavern"),
    "Mediterranean": ("Mezze", "Taverna", "Table"), "Spanish": ("Tapas", "Bodega", "Asador"),
    "Korean": ("BBQ", "Pocha", "Jip"), "Vietnamese": ("Pho", "Banh Mi", "Saigon"),
    "Seafood": ("Oyster Bar", "Fish House", "Crab Shack"), "Steakhouse": ("Chophouse", "Steaks", "Prime"),
    "Greek": ("Estiatorio", "Taverna", "Grill"),
}
_DISHES = {
    "Italian": ("cacio e pepe", "wood-fired margherita", "tiramisu", "burrata", "osso buco"),
    "French": ("steak frites", "duck confit", "onion soup", "creme brulee", "escargots"),
    "Japanese": ("omakase nigiri", "tonkotsu ramen", "chicken karaage", "miso black cod", "matcha parfait"),
    "Mexican": ("al pastor tacos", "mole negro", "guacamole", "churros", "ceviche tostada"),
    "Chinese": ("xiao long bao", "peking duck", "mapo tofu", "char siu bao", "dan dan noodles"),
    "Indian": ("butter chicken", "lamb biryani", "garlic naan", "palak paneer", "mango lassi"),
    "Thai": ("pad see ew", "green curry", "som tam", "khao soi", "mango sticky rice"),
    "American": ("smash burger", "buttermilk fried chicken", "mac and cheese", "apple pie", "ribeye"),
    "Mediterranean": ("lamb kofta", "hummus", "grilled octopus", "falafel plate", "baklava"),
    "Spanish": ("paella valenciana", "patatas bravas", "jamon iberico", "gambas al ajillo", "churros"),
    "Korean": ("galbi", "bibimbap", "kimchi jjigae", "japchae", "fried chicken"),
    "Vietnamese": ("pho bo", "banh xeo", "shaking beef", "spring rolls", "bun cha"),
    "Seafood": ("oysters on the half shell", "cioppino", "lobster roll", "clam chowder", "grilled halibut"),
    "Steakhouse": ("dry-aged ribeye", "filet mignon", "creamed spinach", "wedge salad", "bone marrow"),
    "Greek": ("moussaka", "souvlaki", "spanakopita", "grilled branzino", "galaktoboureko"),
}


@dataclass(frozen=True)
class Restaurant:
    """One restaurant.

    Attributes:
        rid: url-safe id, e.g. "r042".
        hours: per weekday (0 = Monday) the (first, last) seating in minutes after
            midnight, or None when closed that day.
        max_party: the largest party it seats.
    """

    rid: str
    name: str
    cuisine: str
    neighbourhood: str
    price_level: int  # 1..4, shown as $..$$$$
    rating: float  # 3.0..5.0
    reviews: int
    description: str
    menu_highlights: tuple[str, ...]
    seating_areas: tuple[str, ...]
    hours: tuple[tuple[int, int] | None, ...]
    max_party: int

    @property
    def price(self) -> str:
        return "$" * self.price_level


def generate_restaurants(seed: int = 0, n: int = 300) -> tuple[Restaurant, ...]:
    """`n` restaurants with unique names, the same for the same (seed, n)."""
    if n < 1:
        raise ValueError(f"need at least one restaurant, not {n}")
    return _generate(seed, n)


@lru_cache(maxsize=8)
def _generate(seed: int, n: int) -> tuple[Restaurant, ...]:
    rng = random.Random(f"webgrove-booking-restaurants-{seed}")
    names: set[str] = set()
    out = []
    for i in range(n):
        cuisine = CUISINES[i % len(CUISINES)] if i < len(CUISINES) else rng.choice(CUISINES)
        name = _unique_name(rng, cuisine, names)
        hood = rng.choice(NEIGHBOURHOODS)
        dishes = tuple(rng.sample(_DISHES[cuisine], 3))
        seating = ("Indoor",) + tuple(a for a in SEATING_AREAS[1:] if rng.random() < 0.45)
        out.append(Restaurant(
            rid=f"r{i:03d}", name=name, cuisine=cuisine, neighbourhood=hood,
            price_level=rng.choice((1, 2, 2, 3, 3, 4)), rating=round(rng.uniform(3.0, 5.0), 1),
            reviews=rng.randrange(12, 2400),
            description=(f"{rng.choice(('Cosy', 'Lively', 'Elegant', 'Relaxed', 'Bustling'))} "
                         f"{cuisine.lower()} restaurant in {hood}, known for its {dishes[0]}."),
            menu_highlights=dishes, seating_areas=seating, hours=_hours(rng),
            max_party=rng.choice((6, 8, 8, 10, 12))))
    return tuple(out)


def _unique_name(rng: random.Random, cuisine: str, taken: set[str]) -> str:
    while True:
        style = rng.choice(_STYLE[cuisine])
        word = f"{rng.choice(_FIRST)} {rng.choice(_SECOND)}"
        name = f"{style} {word}" if rng.random() < 0.5 else f"{word} {style}"
        if name not in taken:
            taken.add(name)
            return name


def _hours(rng: random.Random) -> tuple[tuple[int, int] | None, ...]:
    first = rng.choice((11 * 60 + 30, 17 * 60, 17 * 60 + 30))
    last = rng.choice((21 * 60, 21 * 60 + 30, 22 * 60))
    closed = rng.choice((0, 1, None, None))  # closed Mondays, Tuesdays or never
    return tuple(None if day == closed else (first, last) for day in range(7))


# -- dates and times --------------------------------------------------------------------

def bookable_dates() -> list[date]:
    return [TODAY + timedelta(days=i) for i in range(BOOKING_DAYS)]


def parse_date(text: str) -> date | None:
    """An ISO date within the booking window, else None."""
    try:
        d = date.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return d if TODAY <= d < TODAY + timedelta(days=BOOKING_DAYS) else None


def parse_time(text: str) -> int | None:
    """'19:30' -> 1170 (minutes after midnight) on the 15-minute grid, else None."""
    try:
        hh, mm = text.split(":")
        minutes = int(hh) * 60 + int(mm)
    except (AttributeError, ValueError):
        return None
    if len(hh) != 2 or len(mm) != 2 or not 0 <= minutes < 24 * 60 or minutes % SLOT_MINUTES:
        return None
    return minutes


def format_time(minutes: int) -> str:
    """1170 -> '7:30 pm'."""
    hh, mm = divmod(minutes, 60)
    suffix = "am" if hh < 12 else "pm"
    return f"{(hh - 1) % 12 + 1}:{mm:02d} {suffix}"


def iso_time(minutes: int) -> str:
    """1170 -> '19:30'."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def format_date(d: date) -> str:
    """date(2026, 3, 13) -> 'Friday, 13 March 2026'."""
    return f"{WEEKDAYS[d.weekday()]}, {d.day} {d.strftime('%B')} {d.year}"


# -- availability -----------------------------------------------------------------------

def _unit(*parts: object) -> float:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _busy(d: date, minutes: int, party: int) -> float:
    """Chance that no table is free: peak hours, weekends and big parties are busier."""
    p = 0.25
    if 19 * 60 <= minutes <= 20 * 60 + 30:
        p += 0.3
    if d.weekday() >= 4:
        p += 0.15
    if party >= 5:
        p += 0.15
    if party >= 8:
        p += 0.1
    return p


def seatings(r: Restaurant, d: date) -> list[int]:
    """Every seating time of the day (minutes), free or not; [] when closed."""
    hours = r.hours[d.weekday()]
    if hours is None:
        return []
    return list(range(hours[0], hours[1] + 1, SLOT_MINUTES))


def is_available(r: Restaurant, d: date, minutes: int, party: int, seed: int = 0,
                 taken: frozenset[tuple[str, str, int]] = frozenset()) -> bool:
    """Whether a table for `party` is free at r on d at `minutes`.

    `taken` holds (rid, iso date, minutes) slots booked in this session. A free table
    for a party is free for any smaller party (the draw is shared, the bar is lower).
    """
    if not 1 <= party <= r.max_party or minutes not in seatings(r, d):
        return False
    if (r.rid, d.isoformat(), minutes) in taken:
        return False
    return _unit(seed, r.rid, d.isoformat(), minutes) >= _busy(d, minutes, party)


def free_slots(r: Restaurant, d: date, party: int, seed: int = 0,
               taken: frozenset[tuple[str, str, int]] = frozenset()) -> list[int]:
    """The free seating times of the day for this party, in order."""
    return [m for m in seatings(r, d) if is_available(r, d, m, party, seed, taken)]


def alternatives(r: Restaurant, d: date, minutes: int, party: int, seed: int = 0,
                 taken: frozenset[tuple[str, str, int]] = frozenset()) -> tuple[int | None, int | None]:
    """The nearest free times before and after `minutes` (None where there is none)."""
    free = free_slots(r, d, party, seed, taken)
    before = [m for m in free if m < minutes]
    after = [m for m in free if m > minutes]
    return (before[-1] if before else None, after[0] if after else None)
