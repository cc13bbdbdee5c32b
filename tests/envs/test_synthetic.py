"""The synthetic catalog: determinism, sizes, vocabulary, goal validity, distractors, splits."""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections import Counter, defaultdict

import pytest

from webgrove.envs.shop.catalog import TEST_SPLIT_SIZE
from webgrove.envs.shop.engine import RESERVED_LABELS
from webgrove.envs.shop.normalize import normalize_color
from webgrove.envs.shop.reward import fuzzy_match, get_reward
from webgrove.envs.shop.synthetic import NO_PRICE_LIMIT, PRICE_RANGE, generate_catalog
from webgrove.envs.shop.vocab import CATEGORY_ATTRIBUTES, CATEGORY_ROOTS, INSTRUCTION_TEMPLATES, PRODUCT_TYPES

ASIN = re.compile(r"^B0[0-9A-Z]{8}$")
TYPES = {t.query: t for t in PRODUCT_TYPES}
# sha256 of generate_catalog(30, seed=0); see test_output_is_pinned.
PINNED_DIGEST = "8c341783bf27ec0898907d3bc43ec4fa91bb387b0a4ee789a8854e04ae3403c9"


@pytest.fixture(scope="module")
def catalog():
    return generate_catalog()  # the default: 1,000 products, seed 0


PRODUCT_FIELDS = ("asin", "title", "category", "query", "product_category", "brand", "pricing", "price",
                  "options", "attributes", "bullet_points", "description", "small_description", "rating",
                  "title_nouns")
GOAL_FIELDS = ("asin", "instruction", "attributes", "goal_options", "price_upper", "query", "name",
               "product_category", "category", "title_nouns")


def _fingerprint(cat) -> str:
    """sha256 of what the generator decides (named fields, so new dataclass fields do not move it)."""
    rows = [[getattr(p, f) for f in PRODUCT_FIELDS] + [[(r.score, r.title, r.body) for r in p.reviews]]
            for p in cat.products]
    rows += [[getattr(g, f) for f in GOAL_FIELDS] for g in cat.goals]
    return hashlib.sha256(json.dumps([rows, cat.splits], sort_keys=True).encode()).hexdigest()


# --- determinism and sizes ------------------------------------------------------------


def test_same_seed_same_catalog_and_other_seed_differs():
    a, b, c = generate_catalog(200, seed=7), generate_catalog(200, seed=7), generate_catalog(200, seed=8)
    assert a.products == b.products and a.goals == b.goals and a.splits == b.splits
    assert _fingerprint(a) == _fingerprint(b)
    assert [p.asin for p in a.products] != [p.asin for p in c.products]
    assert [p.title for p in a.products] != [p.title for p in c.products]
    assert [g.instruction for g in a.goals] != [g.instruction for g in c.goals]


def test_output_is_pinned():
    # numpy's PCG64 streams and our formatting are platform independent, so this
    # digest is the same on every machine. It changes only when the generator or
    # the vocabulary changes on purpose: then update it in the same commit.
    assert _fingerprint(generate_catalog(30, seed=0)) == PINNED_DIGEST


@pytest.mark.parametrize("n", [1, 2, 7, 50, 333])
def test_exact_size_and_unique_asins(n):
    cat = generate_catalog(n, seed=3)
    assert len(cat.products) == n
    asins = [p.asin for p in cat.products]
    assert all(ASIN.match(a) for a in asins)
    assert len(set(asins)) == n
    assert {g.asin for g in cat.goals} <= set(asins)


def test_bigger_catalog_starts_with_the_smaller_one():
    small, big = generate_catalog(130, seed=5), generate_catalog(400, seed=5)
    assert big.products[:130] == small.products
    big_order = {id_: i for i, id_ in enumerate((g.asin, g.instruction) for g in big.goals)}
    positions = [big_order[(g.asin, g.instruction)] for g in small.goals]  # KeyError: not a subset
    assert positions == sorted(positions)  # same relative order


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_rejects_bad_sizes(bad):
    with pytest.raises(ValueError):
        generate_catalog(bad)


def test_rejects_negative_seed():
    with pytest.raises(ValueError):
        generate_catalog(10, seed=-1)


def test_default_splits(catalog):
    assert len(catalog.products) == 1000
    test, train = catalog.splits["test"], catalog.splits["train"]
    assert len(test) == TEST_SPLIT_SIZE
    assert len(train) >= 1500
    assert sorted(test + train) == list(range(len(catalog.goals)))


def test_goal_order_is_shuffled(catalog):
    # Goals are not grouped by family: neighbours rarely share a target type.
    same = sum(a.query == b.query for a, b in zip(catalog.goals, catalog.goals[1:]))
    assert same < 0.2 * len(catalog.goals)


# --- vocabulary ---------------------------------------------------------------------


def test_catalog_covers_categories_types_and_attributes(catalog):
    assert {"beauty", "food", "fashion", "furniture", "electronics"} <= {p.category for p in catalog.products}
    assert len({p.query for p in catalog.products}) >= 40
    attrs_by_category = defaultdict(set)
    for p in catalog.products:
        attrs_by_category[p.category].update(p.attributes)
    assert all(len(attrs) >= 15 for attrs in attrs_by_category.values()), {
        c: len(a) for c, a in attrs_by_category.items()}
    option_names = {name for p in catalog.products for name in p.options}
    assert {"size", "color", "flavor name", "scent", "style", "material", "item package quantity"} <= option_names


def test_attribute_phrases_are_distinguishable_by_the_reward():
    for category, phrases in CATEGORY_ATTRIBUTES.items():
        assert len(set(phrases)) == len(phrases) >= 15
        for a, b in itertools.permutations(phrases, 2):
            assert not fuzzy_match(a, b), (category, a, b)
            assert a not in b, (category, a, b)
    for t in PRODUCT_TYPES:
        assert set(t.attributes) <= set(CATEGORY_ATTRIBUTES[t.category]), t.query
        assert len(t.attributes) >= 8, t.query  # core + 3 signatures + extras


def test_option_values_are_distinguishable_by_the_reward():
    """A wrong value never matches a goal option, and the right one always does.

    Goal options reach WebShop's reward as (name, value) pairs; both sides are
    color-normalized, then fuzzy-matched.
    """
    for t in PRODUCT_TYPES:
        assert len(next(iter(t.options.values()))) >= 4, t.query  # the primary option splits in two
        values = [(name, v) for name, pool in t.options.items() for v in pool]
        assert len({v for _, v in values}) == len(values), t.query
        for name, v in values:
            assert v == v.lower() and v.strip() == v and v not in RESERVED_LABELS
            assert fuzzy_match(normalize_color(v), normalize_color((name, v))), (t.query, v)
        for (name1, v1), (name2, v2) in itertools.permutations(values, 2):
            assert not fuzzy_match(normalize_color(v1), normalize_color((name2, v2))), (t.query, v1, v2)
            assert not fuzzy_match(normalize_color(v1), normalize_color(v2)), (t.query, v1, v2)


def test_instruction_phrasings(catalog):
    assert len(INSTRUCTION_TEMPLATES) >= 10
    openings = {" ".join(g.instruction.split()[:2]) for g in catalog.goals}
    assert len(openings) >= 10


# --- products -----------------------------------------------------------------------


def test_product_fields(catalog):
    asins = {p.asin.lower() for p in catalog.products}
    with_range = 0
    for p in catalog.products:
        t = TYPES[p.query]
        assert p.category == t.category
        assert p.product_category.split(" › ")[0] == CATEGORY_ROOTS[p.category]
        assert p.product_category.split(" › ")[1:] == list(t.path)
        assert p.title and p.brand in p.title and p.description and p.bullet_points and p.small_description
        assert set(t.nouns) <= set(p.title_nouns) and p.brand.lower() in p.title_nouns
        assert all(w == w.lower() for w in p.title_nouns)
        assert set(p.attributes) <= set(t.attributes) and 3 <= len(p.attributes) <= 5

        values = [v for vs in p.options.values() for v in vs]
        assert len(values) == len(set(values))  # unique across option names
        for name, vs in p.options.items():
            assert set(vs) <= set(t.options[name]) and vs
        assert not {v.lower() for v in values} & (RESERVED_LABELS | asins)

        assert len(p.pricing) in (1, 2)
        if len(p.pricing) == 1:
            assert p.price == p.pricing[0]
        else:
            with_range += 1
            assert p.pricing[0] <= p.price <= p.pricing[1]
        assert p.price > 0 and round(p.price, 2) == p.price

        assert all(1 <= r.score <= 5 and r.title and r.body for r in p.reviews)
        if p.reviews:
            assert p.rating == round(sum(r.score for r in p.reviews) / len(p.reviews), 1)
        else:
            assert p.rating is None
    assert 0.1 < with_range / len(catalog.products) < 0.5


def test_text_never_mentions_attributes_the_product_lacks(catalog):
    # The reward counts a goal attribute found verbatim in the title, bullets or description.
    for p in catalog.products:
        texts = (p.title.lower(), " ".join(p.bullet_points).lower(), p.description.lower())
        for phrase in CATEGORY_ATTRIBUTES[p.category]:
            if phrase not in p.attributes:
                assert not any(phrase in text for text in texts), (p.asin, phrase)


# --- goals --------------------------------------------------------------------------


def test_goals_follow_webshop_rules(catalog):
    # 1, 2 or 3 goal attributes drawn with probabilities 0.30 / 0.45 / 0.25
    counts = Counter(len(g.attributes) for g in catalog.goals)
    assert set(counts) == {1, 2, 3}
    shares = {n: counts[n] / len(catalog.goals) for n in counts}
    assert shares == pytest.approx({1: 0.30, 2: 0.45, 3: 0.25}, abs=0.04)
    for g in catalog.goals:
        target = catalog.product(g.asin)
        assert set(g.attributes) <= set(target.attributes)
        assert len(g.goal_options) <= 3
        for name, value in g.goal_options.items():
            assert value in target.options[name]
            assert f"{name}: {value}" in g.instruction
        for a in g.attributes:
            assert a in g.instruction
        assert (g.query, g.name, g.product_category, g.category, g.title_nouns) == (
            target.query, target.title, target.product_category, target.category, target.title_nouns)
        assert g.query in g.instruction and g.instruction == g.instruction.lower()

        candidates = [p for p in PRICE_RANGE if p > target.price][:4]
        if len(candidates) >= 2:
            assert g.price_upper in candidates[1:]  # the larger of two distinct draws
            assert g.instruction.endswith(f", and price lower than {g.price_upper:.2f} dollars")
        else:
            assert g.price_upper == NO_PRICE_LIMIT and "price lower than" not in g.instruction


def test_buying_the_target_as_asked_earns_full_reward(catalog):
    for g in catalog.goals[:300]:
        target = catalog.product(g.asin)
        chosen = {name: g.goal_options.get(name, values[0]) for name, values in target.options.items()}
        assert get_reward(target.to_reward_dict(), g.to_reward_dict(), target.price, chosen) == 1.0


def _has_attribute(p, phrase) -> bool:  # WebShop's attribute test
    if any(fuzzy_match(a, phrase) for a in p.attributes):
        return True
    return any(phrase in text for text in (p.title.lower(), " ".join(p.bullet_points).lower(), p.description.lower()))


def _offers(p, name, value) -> bool:  # WebShop's option test against every value p offers
    return any(fuzzy_match(normalize_color(v), normalize_color((name, value))) for vs in p.options.values() for v in vs)


def test_every_goal_has_close_distractors(catalog):
    by_query = defaultdict(list)
    for p in catalog.products:
        by_query[p.query].append(p)
    for g in catalog.goals[:400]:
        others = [p for p in by_query[g.query] if p.asin != g.asin]
        kinds = set()
        for p in others:
            missing = [a for a in g.attributes if not _has_attribute(p, a)]
            all_options = all(_offers(p, n, v) for n, v in g.goal_options.items())
            if len(missing) == 1 and all_options:
                kinds.add("attribute")
            if not missing and not all_options and p.price <= g.price_upper:
                kinds.add("option")
            if not missing and all_options and g.price_upper < p.price <= g.price_upper + 10:
                kinds.add("price")
        expected = {"attribute"} | ({"option"} if g.goal_options else set()) | (
            {"price"} if g.price_upper < NO_PRICE_LIMIT else set())
        assert kinds >= expected, (g.instruction, kinds)


def test_search_finds_targets_but_distractors_compete(catalog):
    from webgrove.envs.shop.search import SearchIndex

    index = SearchIndex(catalog.products)
    position = {p.asin: i for i, p in enumerate(catalog.products)}
    goals = catalog.split_goals("test")[:200]
    found = beaten = 0
    for g in goals:
        results = index.search(g.instruction)
        target = position[g.asin]
        if target not in results:
            continue
        found += 1
        for i in results[: results.index(target)]:
            p = catalog.products[i]
            chosen = {n: g.goal_options.get(n) if g.goal_options.get(n) in vs else vs[0] for n, vs in p.options.items()}
            if get_reward(p.to_reward_dict(), g.to_reward_dict(), p.price, chosen) < 1.0:
                beaten += 1
                break
    assert found >= 0.9 * len(goals)  # the target is reachable from the instruction ...
    assert beaten >= 0.25 * len(goals)  # ... but text search alone often ranks a wrong product first
