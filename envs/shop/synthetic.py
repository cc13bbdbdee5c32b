"""A synthetic WebShop-style catalog, deterministic from a seed and of any size.

Products come in *families* of one product type, built so that every goal has
close distractors in the catalog, as WebShop's real search results do. A family
has a few core attributes and 2 or 3 groups, each with its own signature
attribute; the primary option's values are split into a main set and a twin set:

    group g   main  M_g   core + signature_g, primary values = main set, price p_g
              twin  W_g   same attributes and price, primary values = twin set
              over  P_g   same attributes, both value sets, priced just above the goals' limit

Goals target M_g and W_g and always name the signature. So for every goal the
catalog holds a product of the same type lacking exactly one goal attribute
(the other groups' products), one lacking the goal's option value (the twin),
and one over the price limit (P_g). Text search ranks these close to the
target; telling them apart needs the item page.

Randomness: each family draws from `np.random.default_rng([seed, 1, family])`
and the product-type order from `default_rng([seed, 2, cycle])`, so a catalog
is the same on every machine, and a bigger catalog with the same seed starts
with the smaller one's products (goals: the smaller catalog's goals are a subset,
in the same relative order; the test/train cut differs).
"""
from __future__ import annotations

import gc
import math
from itertools import chain

import numpy as np

from webgrove.envs.shop.actions import price_clause
from webgrove.envs.shop.catalog import Catalog, Goal, Product, Review, make_splits
from webgrove.envs.shop.vocab import (
    ATTRIBUTE_BULLETS,
    BRAND_ENDINGS,
    BRAND_STEMS,
    CATEGORY_BULLETS,
    CATEGORY_ROOTS,
    DESCRIPTION_SENTENCES,
    INSTRUCTION_TEMPLATES,
    PRODUCT_TYPES,
    REVIEW_BODIES,
    REVIEW_TITLES,
    STYLE_WORDS,
    ProductType,
)

# WebShop's price limits: a goal's limit is the larger of two of the first four
# multiples of ten above the target's price (web_agent_site/engine/goal.py).
PRICE_RANGE = [10.0 * i for i in range(1, 100)]
NO_PRICE_LIMIT = 1e6  # WebShop's price_upper when the instruction states none

# Seed-sequence streams; every key has the same length, see _rng.
_FAMILY_STREAM, _TYPE_STREAM, _ASIN_STREAM = 1, 2, 3
_ASIN_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASIN_SPACE = 36**8

# How often things happen (cumulative thresholds for a uniform draw).
_ATTRIBUTE_COUNTS = ((0.30, 1), (0.75, 2), (1.0, 3))  # goal attributes: 1-3
_OPTION_COUNTS = ((0.15, 0), (0.60, 1), (0.90, 2), (1.0, 3))  # goal options: 0-3
_REVIEW_SCORES = ((0.45, 5), (0.75, 4), (0.87, 3), (0.94, 2), (1.0, 1))
_PRICE_ENDINGS = (0.99, 0.49, 0.95, 0.0)
_RANGE_SHARE = 0.25  # products priced as "$a to $b"

# Words kept upper case when a phrase is title-cased.
_ACRONYMS = {"usb-c": "USB-C", "hdmi": "HDMI", "tv": "TV", "usda": "USDA", "gmo": "GMO", "hd": "HD",
             "rgb": "RGB", "pu": "PU", "led": "LED", "bbq": "BBQ", "usb": "USB", "c": "C"}


def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    # Keys of one length: numpy's SeedSequence pads short keys with zeros, so
    # [seed, 1] and [seed, 1, 0] would be the same stream.
    return np.random.default_rng([seed, stream, index])


class _Draws:
    """Scalar draws from one numpy Generator, taken a block at a time.

    Generating a family takes hundreds of small draws; reading them from a
    pre-drawn block is many times faster than one Generator call each.
    """

    __slots__ = ("random",)

    def __init__(self, rng: np.random.Generator, block: int = 1024):
        # `random()` is the C-level `__next__` of a chain of blocks: a Python call per draw
        # (the generator's hot path) costs several times more. The stream is rng.random(block)
        # after rng.random(block), as ever.
        self.random = chain.from_iterable(_blocks(rng, block)).__next__

    def below(self, n: int) -> int:
        """An int in [0, n)."""
        return int(self.random() * n)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def chance(self, p: float) -> bool:
        return self.random() < p

    def choice(self, seq):
        return seq[int(self.random() * len(seq))]

    def sample(self, seq, k: int) -> list:
        """k distinct items in random order (a partial Fisher-Yates shuffle)."""
        pool = list(seq)
        n = len(pool)
        for i in range(k):
            j = i + int(self.random() * (n - i))
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k] if k < n else pool

    def shuffled(self, seq) -> list:
        return self.sample(seq, len(seq))

    def pick(self, table) -> int:
        """A value from ((cumulative probability, value), ...)."""
        u = self.random()
        for bound, value in table:
            if u < bound:
                return value
        return table[-1][1]


def _blocks(rng: np.random.Generator, block: int):
    while True:
        yield rng.random(block).tolist()


def generate_catalog(num_products: int = 1000, seed: int = 0) -> Catalog:
    """A synthetic catalog of exactly `num_products` products, with goals and splits.

    Args:
        num_products: how many products (>= 1). About 2.3 goals are made per product.
        seed: non-negative seed; the same seed gives the same catalog on every machine.

    Returns:
        A `Catalog` whose goals are in a seeded shuffled order, split by
        `make_splits` (the first 500 goals are the test split).
    """
    if isinstance(num_products, bool) or not isinstance(num_products, (int, np.integer)) or num_products < 1:
        raise ValueError(f"num_products must be a positive integer, got {num_products!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    num_products, seed = int(num_products), int(seed)
    # The catalog is a large acyclic object graph: cyclic GC passes while building
    # it find nothing and cost about a fifth of the time, so they wait until the end.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(num_products, seed)
    finally:
        if gc_was_enabled:
            gc.enable()


def _generate(num_products: int, seed: int) -> Catalog:
    asin_of = _asin_maker(seed)
    products: list[Product] = []
    keyed_goals: list[tuple[float, int, Goal]] = []
    type_orders: dict[int, list[int]] = {}
    family = 0
    while len(products) < num_products:
        cycle, slot = divmod(family, len(PRODUCT_TYPES))
        if cycle not in type_orders:  # every type once per cycle, in a seeded order
            type_orders[cycle] = _rng(seed, _TYPE_STREAM, cycle).permutation(len(PRODUCT_TYPES)).tolist()
        ptype = PRODUCT_TYPES[type_orders[cycle][slot]]
        draws = _Draws(_rng(seed, _FAMILY_STREAM, family))
        members, goals = _build_family(draws, ptype, len(products), asin_of)
        keep = min(len(members), num_products - len(products))
        products.extend(members[:keep])
        # A cut family (the last one) keeps only goals whose target and distractors survived.
        keyed_goals.extend((key, len(keyed_goals), goal) for key, needs, goal in goals if needs < keep)
        family += 1

    keyed_goals.sort(key=lambda kg: (kg[0], kg[1]))
    goals = [goal for _, _, goal in keyed_goals]
    return Catalog(products=products, goals=goals, splits=make_splits(len(goals)),
                   name=f"synthetic-{num_products}-seed{seed}")


def _asin_maker(seed: int):
    """index -> "B0" + 8 characters, a seeded bijection (so asins never collide)."""
    rng = _rng(seed, _ASIN_STREAM)
    multiplier = int(rng.integers(_ASIN_SPACE // 3, _ASIN_SPACE)) | 1
    while multiplier % 3 == 0:  # coprime to 36, so i -> a*i + b is one-to-one mod 36**8
        multiplier += 2
    offset = int(rng.integers(0, _ASIN_SPACE))

    def asin_of(index: int) -> str:
        x = (multiplier * index + offset) % _ASIN_SPACE
        chars = []
        for _ in range(8):
            x, r = divmod(x, 36)
            chars.append(_ASIN_ALPHABET[r])
        return "B0" + "".join(reversed(chars))

    return asin_of


def _build_family(d: _Draws, ptype: ProductType, start: int, asin_of):
    """The products of one family and its goals as (shuffle key, needed members, goal).

    Members are ordered M_0, W_0, P_0, M_1, ...; a goal "needs" the highest member
    position among its target and distractors, so a family cut to its first k
    members keeps exactly the goals with needs < k.
    """
    n_groups = 3 if d.chance(0.4) else 2
    attributes = d.shuffled(ptype.attributes)
    n_core = 3 if d.chance(0.3) else 2
    core = attributes[:n_core]
    signatures = attributes[n_core:n_core + n_groups]
    extras = attributes[n_core + n_groups:]  # never a signature, so distractors stay exact

    names = list(ptype.options)
    primary, secondary = names[0], names[1:]
    pool = ptype.options[primary]
    split = d.shuffled(pool)
    n_main = 2 + d.below(min(3, len(pool) - 3))  # 2..4, leaving at least 2 for the twin
    n_twin = 1 + d.below(min(3, len(pool) - n_main))
    main_values = sorted(split[:n_main], key=pool.index)
    twin_values = sorted(split[n_main:n_main + n_twin], key=pool.index)
    both_values = sorted(main_values + twin_values, key=pool.index)
    shared = {name: _some_values(d, ptype.options[name]) for name in secondary}

    low, high = ptype.price
    base_price = math.exp(d.uniform(math.log(low), math.log(high)))

    members: list[Product] = []
    goals: list[tuple[float, int, Goal]] = []
    for g in range(n_groups):
        group_attrs = core + [signatures[g]]
        price = _shop_price(d, base_price * d.uniform(0.97, 1.03))
        limit = _price_limit(d, price)
        at = start + len(members)
        main = _make_product(d, ptype, asin_of(at), _with_extra(d, group_attrs, extras),
                             {primary: main_values, **shared}, price, _pricing(d, price))
        twin = _make_product(d, ptype, asin_of(at + 1), _with_extra(d, group_attrs, extras),
                             {primary: twin_values, **shared}, price, _pricing(d, price))
        over_price = _over_price(d, price, limit)
        over = _make_product(d, ptype, asin_of(at + 2), _with_extra(d, group_attrs, extras),
                             {primary: both_values, **shared}, over_price, _over_pricing(d, over_price, limit))
        members.extend((main, twin, over))

        pos = 3 * g
        other_group_main = 3 * ((g + 1) % n_groups)  # lacks exactly the signature
        for target_pos, target, option_twin_pos in ((pos, main, pos + 1), (pos + 1, twin, pos)):
            for goal in _make_goals(d, ptype, target, signatures[g], core, primary, limit):
                needs = max(target_pos, other_group_main)
                if goal.goal_options:
                    needs = max(needs, option_twin_pos)
                if limit < NO_PRICE_LIMIT:
                    needs = max(needs, pos + 2)
                goals.append((d.random(), needs, goal))
    return members, goals


def _some_values(d: _Draws, pool) -> list[str]:
    k = min(len(pool), 2 + d.below(3))
    return sorted(d.sample(pool, k), key=pool.index)


def _with_extra(d: _Draws, attributes: list[str], extras: list[str]) -> list[str]:
    chosen = list(attributes)
    if extras and d.chance(0.5):
        chosen.append(d.choice(extras))
    return d.shuffled(chosen)


# --- prices ----------------------------------------------------------------------


def _shop_price(d: _Draws, x: float) -> float:
    return round(max(1.0, math.floor(x)) + d.choice(_PRICE_ENDINGS), 2)


def _price_limit(d: _Draws, price: float) -> float:
    """WebShop's draw: the larger of 2 of the first 4 multiples of 10 above the price."""
    candidates = [p for p in PRICE_RANGE if p > price][:4]
    if len(candidates) < 2:
        return NO_PRICE_LIMIT
    i, j = d.sample(range(len(candidates)), 2)
    return max(candidates[i], candidates[j])


def _over_price(d: _Draws, price: float, limit: float) -> float:
    if limit >= NO_PRICE_LIMIT:
        return _shop_price(d, price * d.uniform(1.3, 1.8))
    return round(limit + d.below(9) + 0.99, 2)  # 0.99 to 8.99 dollars above the limit


def _pricing(d: _Draws, price: float) -> list[float]:
    if not d.chance(_RANGE_SHARE):
        return [price]
    return [round(price * d.uniform(0.6, 0.95), 2), round(price * d.uniform(1.05, 1.6), 2)]


def _over_pricing(d: _Draws, price: float, limit: float) -> list[float]:
    if limit >= NO_PRICE_LIMIT or not d.chance(_RANGE_SHARE):
        return [price]
    # Even the low end stays above the limit.
    return [round(limit + (price - limit) * d.uniform(0.3, 1.0), 2), round(price * d.uniform(1.05, 1.5), 2)]


# --- product text ----------------------------------------------------------------


def _title_case(phrase: str) -> str:
    return " ".join(_ACRONYMS.get(w, w[:1].upper() + w[1:]) for w in phrase.split(" "))


def _join_and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


class _TypeText:
    """The strings of one product type that do not depend on the product, built once."""

    def __init__(self, ptype: ProductType):
        category = ptype.category
        self.type_title = _title_case(ptype.query)
        self.product_category = " › ".join((CATEGORY_ROOTS[category], *ptype.path))
        self.nouns = ptype.nouns
        self.brands = tuple(stem + ending for stem in BRAND_STEMS for ending in BRAND_ENDINGS[category])
        self.styles = STYLE_WORDS[category]
        self.category_bullets = CATEGORY_BULLETS[category]
        self.sentences = DESCRIPTION_SENTENCES[category]
        self.option_prefix = {name: _title_case(name) + " options: " for name in ptype.options}
        this_type = ("these " if ptype.plural else "this ") + ptype.query
        be = "are" if ptype.plural else "is"
        self.description_start = f"{this_type[:1].upper()}{this_type[1:]} from "
        self.description_be = f" {be} "
        words = {"type": ptype.query, "this_type": this_type, "This_type": this_type[:1].upper() + this_type[1:],
                 "be": be}
        self.attr_title = {a: _title_case(a) for a in ptype.attributes}
        self.attr_bullets = {
            a: tuple(t.format(A=self.attr_title[a], attr=a, **words) for t in ATTRIBUTE_BULLETS)
            for a in ptype.attributes
        }
        # review bodies by score, then by the attribute they may mention
        self.review_bodies = {
            score: {a: tuple(t.format(attr=a, **words) for t in templates) for a in ptype.attributes}
            for score, templates in REVIEW_BODIES.items()
        }
        # instruction phrasings as (text before the attributes, text after them)
        if ptype.plural:
            a_type = ptype.query
        elif ptype.mass:
            a_type = "some " + ptype.query
        else:
            a_type = _article(ptype.query) + ptype.query
        self.instruction_parts = tuple(
            tuple(t.format(a_type=a_type, type=ptype.query, be=be, attrs="\0").split("\0"))
            for t in INSTRUCTION_TEMPLATES
        )


_TYPE_TEXT: dict[str, _TypeText] = {}


def _type_text(ptype: ProductType) -> _TypeText:
    text = _TYPE_TEXT.get(ptype.query)
    if text is None:
        text = _TYPE_TEXT[ptype.query] = _TypeText(ptype)
    return text


def _make_product(d: _Draws, ptype: ProductType, asin: str, attributes: list[str],
                  options: dict[str, list[str]], price: float, pricing: list[float]) -> Product:
    tt = _type_text(ptype)
    brand = d.choice(tt.brands)
    style, style_nouns = d.choice(tt.styles)
    shown = [tt.attr_title[a] for a in d.sample(attributes, d.below(3))]  # 0-2 attributes in the title
    form = d.below(3)
    if form == 0:
        title = f"{brand} {style} {tt.type_title}" + "".join(", " + a for a in shown)
    elif form == 1:
        title = f"{brand} {tt.type_title} - {style}" + (" - " + " & ".join(shown) if shown else "")
    else:
        title = f"{style} {tt.type_title} by {brand}" + (" (" + ", ".join(shown) + ")" if shown else "")
    title_nouns = list(dict.fromkeys([brand.lower(), *style_nouns.split(), *tt.nouns]))

    bullets = []
    for a in attributes:  # most attributes get a bullet, in one of several wordings
        u = d.random()
        if u < 0.8:
            bullets.append(tt.attr_bullets[a][int(u * 1.25 * len(ATTRIBUTE_BULLETS))])
    bullets += [tt.option_prefix[name] + ", ".join(values) for name, values in options.items()]
    bullets += d.sample(tt.category_bullets, 1 + d.below(2))
    bullets = d.shuffled(bullets)

    description = (tt.description_start + brand + tt.description_be + _join_and(attributes) + ". "
                   + " ".join(d.sample(tt.sentences, 1 + d.below(2))))
    small_description = [f"{tt.type_title} by {brand}", " | ".join(tt.attr_title[a] for a in attributes),
                         d.choice(tt.category_bullets)]

    reviews = []
    for _ in range(d.below(5)):
        score = d.pick(_REVIEW_SCORES)
        body = d.choice(tt.review_bodies[score][d.choice(attributes)])
        reviews.append(Review(score=score, title=d.choice(REVIEW_TITLES[score]), body=body))
    rating = round(sum(r.score for r in reviews) / len(reviews), 1) if reviews else None

    return Product(
        asin=asin,
        title=title,
        category=ptype.category,
        query=ptype.query,
        product_category=tt.product_category,
        brand=brand,
        pricing=pricing,
        price=price,
        options={name: list(values) for name, values in options.items()},
        attributes=attributes,
        bullet_points=bullets,
        description=description,
        small_description=small_description,
        reviews=reviews,
        rating=rating,
        title_nouns=title_nouns,
    )


# --- goals -----------------------------------------------------------------------


def _make_goals(d: _Draws, ptype: ProductType, target: Product, signature: str, core: list[str],
                primary: str, limit: float) -> list[Goal]:
    """3 or 4 distinct goals for one target; each names the signature attribute."""
    tt = _type_text(ptype)
    wanted = 3 + d.below(2)
    options = target.options
    secondary = [name for name in options if name != primary]
    price_text = price_clause(limit) if limit < NO_PRICE_LIMIT else ""
    goals: list[Goal] = []
    seen = set()
    for _ in range(4 * wanted):
        n_attrs = min(d.pick(_ATTRIBUTE_COUNTS), 1 + len(core))
        attributes = d.sample(core, n_attrs - 1)
        attributes.insert(d.below(n_attrs), signature)
        n_options = min(d.pick(_OPTION_COUNTS), len(options))
        chosen = {primary, *d.sample(secondary, n_options - 1)} if n_options else ()
        goal_options = {name: d.choice(values) for name, values in options.items() if name in chosen}
        key = (frozenset(attributes), tuple(goal_options.values()))
        if key in seen:
            continue
        seen.add(key)

        before, after = d.choice(tt.instruction_parts)
        instruction = before + _join_and(attributes) + after
        if goal_options:
            instruction += ", with " + ", and ".join([f"{name}: {value}" for name, value in goal_options.items()])
        goals.append(Goal.for_product(target, instruction + price_text, attributes, goal_options, limit))
        if len(goals) == wanted:
            break
    return goals


def _article(query: str) -> str:
    return "an " if query[0] in "aeio" or query.startswith("hdmi") else "a "
