"""WebShop's color normalization, used by the option reward.

WebShop maps an option value to the first base color name it contains
(`web_agent_site/engine/normalize.py`), so "navy blue" and "light blue" both
become "blue" before options are compared. The list and its order are WebShop's:
the order decides which color wins ("navy blue" -> "blue", because "blue" sorts
before "navy"), so it must not be re-sorted or extended.
"""
from __future__ import annotations

from functools import lru_cache

# WebShop's COLOR_SET, in WebShop's order.
COLOR_SET: tuple[str, ...] = (
    "alabaster", "apricot", "aqua", "ash", "asphalt", "azure",
    "banana", "beige", "black", "blue", "blush", "bordeaux", "bronze",
    "brown", "burgundy", "camel", "camo", "caramel", "champagne",
    "charcoal", "cheetah", "chestnut", "chocolate", "christmas", "coffee",
    "cognac", "copper", "coral", "cranberry", "cream", "crystal", "dark",
    "denim", "eggplant", "elephant", "espresso", "fuchsia", "gold", "granite",
    "grape", "graphite", "grass", "gray", "green", "grey", "heather", "indigo",
    "ivory", "ivy", "khaki", "lavender", "lemon", "leopard", "light", "lilac",
    "lime", "magenta", "maroon", "mauve", "merlot", "midnight", "mint", "mocha",
    "multicolor", "mushroom", "mustard", "natural", "navy", "nude", "olive",
    "orange", "peach", "pewter", "pink", "plum", "purple", "rainbow", "red",
    "rose", "royal", "rust", "sand", "sapphire", "seashell", "silver", "skull",
    "slate", "steel", "stone", "stonewash", "sunflower", "tan", "taupe", "teal",
    "tiger", "turquoise", "violet", "walnut", "wheat", "white", "wine", "yellow",
)

_COLOR_RANK = {color: rank for rank, color in enumerate(COLOR_SET)}


@lru_cache(maxsize=1 << 16)
def _first_color_in(text: str) -> str:
    for color in COLOR_SET:
        if color in text:
            return color
    return text


def normalize_color(value):
    """The first WebShop base color found in `value`, else `value` unchanged.

    For a string this is a case-sensitive substring test in COLOR_SET order
    ("steelivy fuchsia" -> "fuchsia", "Black" -> "Black"). Any other container
    is tested by membership, as WebShop's `in` does: a (name, value) tuple
    becomes a color only when one of its items *equals* a base color
    (("color", "black") -> "black", ("color", "jet black") stays a tuple).
    The reward relies on this for goal options passed as dict items.
    """
    if isinstance(value, str):
        return _first_color_in(value)
    # `color in value` for each color in order = the earliest-ranked item equal to a color.
    ranks = [_COLOR_RANK[item] for item in value if isinstance(item, str) and item in _COLOR_RANK]
    return COLOR_SET[min(ranks)] if ranks else value
