"""WebShop's reward on hand-computed cases.

Scores marked "thefuzz 0.19.0" were checked against WebShop's pinned thefuzz
(pure-Python backend) when this file was written; the rest follow from the formula.
"""
from __future__ import annotations

import math

import pytest
from rapidfuzz import fuzz

from webgrove.envs.shop import reward
from webgrove.envs.shop.normalize import COLOR_SET, normalize_color
from webgrove.envs.shop.reward import (
    fuzzy_match,
    get_attribute_reward,
    get_option_reward,
    get_reward,
    get_type_reward,
    heuristic_nouns,
    noun_method,
    token_set_score,
)


@pytest.fixture(autouse=True)
def no_spacy(monkeypatch):
    """Tests fix the noun method; spaCy being installed must not change them."""
    monkeypatch.setattr(reward, "_spacy_pipeline", lambda: None)


def make_product(**overrides) -> dict:
    product = {
        "asin": "B000000001",
        "Title": "Tea Tree Shampoo for Dry Scalp",
        "name": "Tea Tree Shampoo for Dry Scalp",
        "BulletPoints": ["Made with natural ingredients", "Sulfate free"],
        "Description": "A shampoo for every day.",
        "Attributes": ["tea tree", "paraben free"],
        "query": "shampoo",
        "product_category": "Beauty › Hair Care › Shampoo",
        "title_nouns": ["tea", "tree", "shampoo", "scalp"],
    }
    product.update(overrides)
    return product


def make_goal(**overrides) -> dict:
    goal = {
        "asin": "B000000001",
        "instruction_text": "i need a tea tree shampoo",
        "attributes": ["tea tree", "paraben free"],
        "goal_options": {"size": "12 fl oz", "scent": "mint"},
        "price_upper": 30.0,
        "name": "Tea Tree Shampoo for Dry Scalp",
        "query": "shampoo",
        "product_category": "Beauty › Hair Care › Shampoo",
        "title_nouns": ["tea", "tree", "shampoo", "scalp"],
    }
    goal.update(overrides)
    return goal


GOOD_OPTIONS = {"size": "12 fl oz", "scent": "mint"}


# --- the total ---------------------------------------------------------------------


def test_exact_match_scores_one():
    assert get_reward(make_product(), make_goal(), 20.0, GOOD_OPTIONS) == 1.0


def test_one_of_two_attributes_missing():
    product = make_product(Attributes=["tea tree"])  # "paraben free" is nowhere in the product
    # (1 attribute + 2 options + price) / (2 + 2 + 1)
    assert get_reward(product, make_goal(), 20.0, GOOD_OPTIONS) == pytest.approx(4 / 5)
    r_att, matched = get_attribute_reward(product, make_goal())
    assert (r_att, matched) == (0.5, 1)


def test_option_mismatch():
    # "lavender" shares no token with ("scent", "mint"); the size still matches.
    options = {"size": "12 fl oz", "scent": "lavender"}
    assert get_reward(make_product(), make_goal(), 20.0, options) == pytest.approx(4 / 5)


def test_price_over_limit():
    assert get_reward(make_product(), make_goal(), 30.01, GOOD_OPTIONS) == pytest.approx(4 / 5)
    assert get_reward(make_product(), make_goal(), 30.0, GOOD_OPTIONS) == 1.0  # the limit itself is fine


def test_verbose_info_keys_and_weights():
    product = make_product(Attributes=["tea tree"])
    total, info = get_reward(product, make_goal(), 40.0, {"size": "12 fl oz"}, verbose=True)
    # attributes 1/2, options 1/2 (scent not chosen), price missed; r_type 1.
    assert total == pytest.approx(2 / 5)
    assert list(info) == [
        "r_type", "r_att", "w_att", "query_match", "category_match", "title_score",
        "r_option", "w_option", "r_price", "w_price",
    ]
    assert info["r_type"] == 1.0 and info["r_att"] == 0.5 and info["r_option"] == 0.5
    assert info["r_price"] is False
    assert info["w_att"] == pytest.approx(2 / 5)
    assert info["w_option"] == pytest.approx(2 / 5)
    assert info["w_price"] == pytest.approx(1 / 5)
    assert info["query_match"] is True and info["category_match"] is True and info["title_score"] == 1.0
    # The weighted parts add up to the total when r_type is 1.
    parts = info["w_att"] * info["r_att"] + info["w_option"] * info["r_option"] + info["w_price"] * info["r_price"]
    assert parts == pytest.approx(total)


def test_verbose_without_goal_options_has_no_option_keys():
    total, info = get_reward(make_product(), make_goal(goal_options={}), 10.0, {}, verbose=True)
    assert total == 1.0
    assert "r_option" not in info and "w_option" not in info
    assert info["w_att"] == pytest.approx(2 / 3) and info["w_price"] == pytest.approx(1 / 3)


def test_reward_is_a_plain_float_and_bool_even_for_numpy_prices():
    import numpy as np
    total, info = get_reward(make_product(), make_goal(), np.float64(20.0), GOOD_OPTIONS, verbose=True)
    assert type(total) is float and type(info["r_price"]) is bool


# --- type reward -------------------------------------------------------------------


def typed(title_nouns_purchase, title_nouns_goal, *, query="other", category="X › Y › Z"):
    product = make_product(query=query, product_category=category, title_nouns=title_nouns_purchase)
    goal = make_goal(title_nouns=title_nouns_goal)
    return get_type_reward(product, goal)


def test_type_reward_full_when_title_overlaps():
    result = typed(["shampoo", "bottle"], ["tea", "tree", "shampoo", "scalp"])  # 1/4 > 0.2
    assert result == {"r_type": 1.0, "query_match": False, "category_match": False, "title_score": 0.25}


def test_type_reward_half_when_nothing_agrees():
    result = typed(["shampoo"], ["tea", "tree", "shampoo", "scalp", "oil"])  # 1/5 = 0.2, not > 0.2
    assert result["r_type"] == 0.5 and result["title_score"] == pytest.approx(0.2)
    # The same title overlap is enough with a matching query or two shared categories.
    goal_nouns = ["tea", "tree", "shampoo", "scalp", "oil"]
    assert typed(["shampoo"], goal_nouns, query="shampoo")["r_type"] == 1.0
    assert typed(["shampoo"], goal_nouns, category="Hair Care › Beauty")["r_type"] == 1.0


def test_type_reward_tenth_when_title_barely_overlaps():
    goal_nouns = ["tea", "tree", "shampoo", "scalp", "oil", "dry", "hair", "care", "men", "women", "kit"]
    result = typed(["shampoo"], goal_nouns, query="shampoo")  # 1/11 < 0.1 even with a query match
    assert result["r_type"] == 0.1 and result["query_match"] is True


def test_type_reward_at_exactly_a_tenth_is_not_cut():
    goal_nouns = ["tea", "tree", "shampoo", "scalp", "oil", "dry", "hair", "care", "men", "kit"]
    result = typed(["shampoo"], goal_nouns, query="shampoo")  # 1/10 is not < 0.1
    assert result["title_score"] == 0.1 and result["r_type"] == 1.0
    assert typed(["shampoo"], goal_nouns)["r_type"] == 0.5


def test_type_reward_zero_without_shared_title_nouns():
    result = typed(["cabinet", "knob"], ["tea", "tree", "shampoo"], query="shampoo")
    assert result["r_type"] == 0.0 and result["title_score"] == 0.0
    product, goal = make_product(title_nouns=["cabinet", "knob"]), make_goal()
    assert get_reward(product, goal, 10.0, GOOD_OPTIONS) == 0.0


def test_type_reward_goal_without_nouns_scores_point_two():
    assert typed(["shampoo"], [])["title_score"] == 0.2


def test_title_score_counts_repeated_goal_nouns():
    # WebShop divides by the goal's noun list with repeats: {"bar"} ∩ = 1 of 3.
    assert typed(["bar"], ["bar", "bar", "cord"])["title_score"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("purchased", "match"),
    [
        ("a › b › c", True), ("b › c › a", True), ("d › e › f", False),
        ("a › d › b", True), ("a › a › b", True), ("a › a › d", False),
    ],
)
def test_category_match_needs_two_shared_parts(purchased, match):
    # WebShop's own test cases.
    goal = {"query": "q", "product_category": "a › b › c", "name": "Name 1"}
    product = {"query": "q", "product_category": purchased, "name": "Name 1"}
    assert get_type_reward(product, goal)["category_match"] is match


# --- noun methods ------------------------------------------------------------------


def test_noun_method_prefers_title_nouns_only_when_both_have_them():
    assert noun_method(make_product(), make_goal()) == "title_nouns"
    assert noun_method(make_product(title_nouns=None), make_goal()) == "heuristic"
    assert noun_method() == "heuristic"


def test_heuristic_nouns():
    assert heuristic_nouns("adidas Unisex-Adult D.o.n. Issue 2 Basketball Shoe, Pack of 2") == (
        "adidas", "unisex", "adult", "d.o.n", "issue", "basketball", "shoe", "pack",
    )


SOUNDBAR_CORD = "Saireed UL Listed 2 Prong Power Cord for JBL Bar 3.1 Bar 2.1 Channel 4K Ultra HD Soundbar"
THEATER_CORD = (
    "BRST AC Power Cord Outlet Socket Cable Plug Lead for Panasonic SC-HT830V DVD/VCR Combo Home Theater System"
)


@pytest.mark.parametrize(
    ("goal_name", "purchased_name", "spacy_score", "r_type"),
    [
        # WebShop's test titles and the title scores spaCy gives them there.
        (
            "adidas Unisex-Adult D.o.n. Issue 2 Basketball Shoe",
            "adidas Unisex-Adult D.o.n. Issue 2 Indoor Court Shoe",
            0.85,
            1.0,
        ),
        (
            SOUNDBAR_CORD + " Home Theater System Subwoofer",
            THEATER_CORD,
            0.31,
            1.0,
        ),
        (
            SOUNDBAR_CORD,
            THEATER_CORD,
            0.17,
            0.5,
        ),
        (
            "Rusticware 921ORB Kitchen and Bath Cabinet Knob",
            "Minkissy 2pcs Stainless Steel Eyebrow Tweezers Blackhead Acne Remover Portable Makeup Tweezers (Silver)",
            0.0,
            0.0,
        ),
    ],
)
def test_heuristic_stays_near_spacy_on_webshop_titles(goal_name, purchased_name, spacy_score, r_type):
    goal = {"query": "q1", "product_category": "a › b › c", "name": goal_name}
    product = {"query": "q2", "product_category": "d › e › f", "name": purchased_name}
    result = get_type_reward(product, goal)
    assert result["title_score"] == pytest.approx(spacy_score, abs=0.03)
    assert result["r_type"] == r_type


class _FakeToken:
    def __init__(self, text, pos):
        self.text, self.pos_ = text, pos


def test_spacy_nouns_used_when_available(monkeypatch):
    tags = {"Tea": "PROPN", "Tree": "NOUN", "Shampoo": "NOUN", "Dry": "ADJ", "Scalp": "NOUN", "for": "ADP",
            "Soap": "NOUN"}

    def fake_nlp(text):
        return [_FakeToken(word, tags.get(word, "X")) for word in text.split()]

    monkeypatch.setattr(reward, "_spacy_pipeline", lambda: fake_nlp)
    reward._spacy_nouns.cache_clear()
    try:
        product = make_product(name="Tea Soap", title_nouns=["anything"])
        assert noun_method(product, make_goal()) == "spacy"
        # goal nouns: tea, tree, shampoo, scalp ("Dry" is ADJ); purchase: tea, soap.
        assert get_type_reward(product, make_goal())["title_score"] == pytest.approx(1 / 4)
    finally:
        reward._spacy_nouns.cache_clear()


# --- attributes -----------------------------------------------------------------------


def test_attribute_reward_webshop_cases():
    goal = {"attributes": ["tea tree", "essential oils", "natural ingredients"]}
    exact = {"Attributes": ["tea tree", "essential oil", "natural ingredients"]}
    assert get_attribute_reward(exact, goal) == (1.0, 3)
    partial = {"Attributes": ["essential oil", "natural ingredients"],
               "Title": "", "BulletPoints": [], "Description": ""}
    assert get_attribute_reward(partial, goal) == (2 / 3, 2)
    in_text = {
        "Attributes": [],
        "Title": "",
        "BulletPoints": ["This shampoo has essential oils and smells like lemons"],
        "Description": "Best shampoo on the market, made with natural ingredients",
    }
    assert get_attribute_reward(in_text, goal) == (2 / 3, 2)
    none = {
        "Attributes": ["tea bag", "earl gray", "lipton"],
        "Title": "English tea for breakfast",
        "BulletPoints": ["Soothing aroma", "Calming, great feeling"],
        "Description": "Best tea made by Lipton, great to pair with breakfast",
    }
    assert get_attribute_reward(none, goal) == (0.0, 0)


def test_attribute_text_search_lowercases_the_product_only():
    product = {"Attributes": [], "Title": "TEA TREE Shampoo", "BulletPoints": [], "Description": ""}
    assert get_attribute_reward(product, {"attributes": ["tea tree"]}) == (1.0, 1)
    assert get_attribute_reward(product, {"attributes": ["Tea Tree"]}) == (0.0, 0)  # as in WebShop


def test_dummy_attr_matches_only_itself():
    # WebShop gives attribute-less products ["DUMMY_ATTR"]; the underscore keeps it one token.
    product = {"Attributes": ["DUMMY_ATTR"], "Title": "", "BulletPoints": [], "Description": ""}
    assert get_attribute_reward(product, {"attributes": ["dummy attr"]}) == (0.0, 0)


# --- options -----------------------------------------------------------------------


def test_option_reward_webshop_cases():
    assert get_option_reward(["pack of 12", "grey", "XL"], ["grey", "XL", "pack of 12"]) == (1.0, 3)
    assert get_option_reward(["pack of 12", "blue", "XL"], ["grey", "XL", "pack of 12"]) == (2 / 3, 2)
    assert get_option_reward(["pack of 12", "powder snow", "XL"], ["cool powder snow", "XL", "pack of 12"]) == (1.0, 3)
    assert get_option_reward(["goal 1", "goal 2"], []) == (None, 0)
    assert get_option_reward([], ["goal 1", "goal 2"]) == (0.0, 0)


def test_one_purchased_value_can_match_several_goal_options():
    assert get_option_reward(["large"], ["large", "x-large"]) == (1.0, 2)


@pytest.mark.parametrize(
    ("purchased", "goal_option", "score"),
    [
        # thefuzz 0.19.0 scores around the threshold, in the reward's argument order.
        ("11 ounces color", "color ounce", 85),  # not a match
        ("medium oz", "medium 6", 86),  # a match
        ("size 10", "size 11", 86),
        ("pack of 6", "pack of 12", 88),  # 87.5 rounds to 88
        ("essential oil", "essential oils", 96),
        ("12 ounce", "12 ounces (pack of 2)", 59),
    ],
)
def test_fuzzy_threshold_edge(purchased, goal_option, score):
    assert token_set_score(purchased, goal_option) == score
    assert fuzzy_match(purchased, goal_option) is (score > 85)
    r_option, matched = get_option_reward([purchased], [goal_option])
    assert matched == (1 if score > 85 else 0)


def test_scores_are_rounded_before_the_threshold():
    # 2 * 47 / 110 = 85.45...: thefuzz rounds to 85, which is not above 85.
    sect = "alpha bravo charlie delta echo foxtrot golf hot"
    purchased, goal_option = f"{sect} zzzzzzzzzzzzzzz", f"{sect} yyyyyyyyyyyyyyyyyyyy"
    assert fuzz.token_set_ratio(purchased, goal_option) == pytest.approx(85.4545, abs=1e-3)
    assert token_set_score(purchased, goal_option) == 85
    assert fuzzy_match(purchased, goal_option) is False


def test_fuzzy_follows_thefuzz_where_rapidfuzz_alone_differs():
    # thefuzz lower-cases, keeps "_" inside words, deletes only chars 128..255.
    assert token_set_score("dummy_attr", "dummy attr") == 50
    assert token_set_score("café", "caf") == 100
    assert token_set_score("gluten free", "gluten-free") == 100
    assert fuzz.token_set_ratio("gluten free", "gluten-free") < 85  # rapidfuzz without processing
    # difflib (thefuzz's backend) finds fewer matching characters than the LCS
    # rapidfuzz uses: 71 in WebShop, 85.7 in rapidfuzz.
    assert fuzz.token_set_ratio("cbebbb", "cbdebebb") > 85
    assert token_set_score("cbebbb", "cbdebebb") == 71
    assert fuzzy_match("cbebbb", "cbdebebb") is False
    assert fuzzy_match(None, "x") is False and token_set_score("x", None) == 0
    assert fuzzy_match("!!!", "!!!") is False  # nothing left after processing scores 0


# --- colors and the dict-items quirk -------------------------------------------------


@pytest.mark.parametrize(
    ("value", "normalized"),
    [
        ("", ""),
        ("black forest", "black"),
        ("violet lavender", "lavender"),  # first in COLOR_SET order, not in the text
        ("steelivy fuchsia", "fuchsia"),
        ("123alabaster", "alabaster"),
        ("navy blue", "blue"),
        ("dark wash | indigo", "ash"),  # "ash" is inside "wash" and comes first
        ("Black", "Black"),  # case-sensitive
        ("xl", "xl"),
        (("color", "black"), "black"),  # tuples: membership, not substring
        (("color", "jet black"), ("color", "jet black")),
    ],
)
def test_normalize_color(value, normalized):
    assert normalize_color(value) == normalized


def test_color_set_is_webshops():
    assert len(COLOR_SET) == 102 and COLOR_SET[:3] == ("alabaster", "apricot", "aqua") and COLOR_SET[-1] == "yellow"


def test_colors_are_normalized_before_matching():
    # "light blue" and "navy blue" both become "blue".
    assert get_option_reward(["light blue"], ["navy blue"]) == (1.0, 1)
    assert get_option_reward(["navy"], ["navy blue"]) == (0.0, 0)


def test_dict_goal_options_are_matched_as_name_value_pairs():
    product, base = make_product(), make_goal(attributes=["tea tree"])
    as_dict = make_goal(attributes=["tea tree"], goal_options={"color": "navy blue"})
    as_list = make_goal(attributes=["tea tree"], goal_options=["navy blue"])
    # "navy" is a token of ("color", "navy blue"): a match for dict goals only.
    assert get_reward(product, as_dict, 10.0, {"color": "navy"}) == 1.0
    assert get_reward(product, as_list, 10.0, {"color": "navy"}) == pytest.approx(2 / 3)
    # A value token-contained in "size x-large" matches.
    x_large = make_goal(attributes=["tea tree"], goal_options={"size": "x-large"})
    assert get_reward(product, x_large, 10.0, {"size": "large"}) == 1.0
    assert base["goal_options"] == {"size": "12 fl oz", "scent": "mint"}  # inputs are not modified


def test_webshop_total_reward_cases():
    # WebShop's test_get_reward, with its expected values.
    goal = {
        "query": "Query 1",
        "product_category": "a › b › c",
        "name": "Mens D.O.N. Issue 2 Gca Basketball Sneakers Shoes Casual - Off White",
        "attributes": ["tea tree", "essential oils", "natural ingredients"],
        "goal_options": {"color": "grey", "size": "XL"},
        "price_upper": 40.00,
    }
    purchased = {
        "query": "Query 1",
        "product_category": "a › b › c",
        "name": "Mens D.O.N. Issue 2 Gca Basketball Sneakers Shoes Casual - Off White",
        "Attributes": ["tea tree", "essential oil", "natural ingredients"],
        "Title": "",
        "BulletPoints": [],
        "Description": "",
    }
    options = {"color": "grey", "size": "XL"}
    assert get_reward(purchased, goal, 35, options) == 1
    purchased["Attributes"] = []
    # A string where a list belongs is joined letter by letter, as in WebShop: no match in it.
    purchased["BulletPoints"] = "This shampoo has essential oils and smells like lemons"
    purchased["Description"] = "Best shampoo on the market, made with natural ingredients"
    assert get_reward(purchased, goal, 35, options) == pytest.approx(4 / 6)
    goal["goal_options"] = {"color": "grey", "size": "XL", "amount": "pack of 12"}
    assert get_reward(purchased, goal, 35, options) == pytest.approx(4 / 7)


# --- bad input ---------------------------------------------------------------------


def test_missing_keys_are_named():
    product = make_product()
    del product["Attributes"]
    with pytest.raises(ValueError, match=r"purchased_product is missing keys \['Attributes'\]"):
        get_reward(product, make_goal(), 10.0, {})
    goal = make_goal()
    del goal["price_upper"]
    with pytest.raises(ValueError, match="price_upper"):
        get_reward(make_product(), goal, 10.0, {})


@pytest.mark.parametrize(
    ("goal_overrides", "price", "options", "error"),
    [
        ({"price_upper": 0}, 10.0, {}, ValueError),
        ({"attributes": []}, 10.0, {}, ValueError),
        ({}, None, {}, ValueError),
        ({}, 10.0, ["12 fl oz"], TypeError),
    ],
)
def test_bad_inputs_raise_clear_errors(goal_overrides, price, options, error):
    with pytest.raises(error):
        get_reward(make_product(), make_goal(**goal_overrides), price, options)
    with pytest.raises(TypeError, match="must be a dict"):
        get_reward([], make_goal(), 10.0, {})


def test_reward_is_finite_and_in_unit_interval():
    for price in (0.0, 29.0, 31.0):
        for options in ({}, GOOD_OPTIONS, {"size": "x"}):
            total = get_reward(make_product(), make_goal(), price, options)
            assert math.isfinite(total) and 0.0 <= total <= 1.0
