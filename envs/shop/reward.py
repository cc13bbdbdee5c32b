"""WebShop's reward (Yao et al. 2022, Sec. 3.1), reproduced case by case.

    reward = r_type * (|attributes matched| + |options matched| + [price <= limit])
                    / (|attributes| + |options| + 1)

The functions take and return what `web_agent_site/engine/goal.py` does, so a
purchase scores the same here as in the original:

- Product dicts carry `Title`, `BulletPoints`, `Description`, `Attributes`,
  `name`, `query`, `product_category` (see `Product.to_reward_dict`); goal dicts
  carry `attributes`, `goal_options`, `price_upper`, `name`, `query`,
  `product_category` (see `Goal.to_reward_dict`).
- Fuzzy matching is a token-set ratio above 85, scored exactly as thefuzz 0.19.0
  (WebShop's pinned version, whose pure-Python backend is difflib's
  SequenceMatcher) scores it; rapidfuzz does the fast common cases, see
  `fuzzy_match`.
- Goal options given as a dict are matched as (name, value) pairs, a quirk of
  the original kept on purpose (see `get_reward`).

The type score compares the nouns of the two product titles. The original takes
them from spaCy; here spaCy's `en_core_web_sm` is used when installed, else the
`title_nouns` both dicts carry (the synthetic catalog provides them), else a
heuristic. `noun_method` says which one a call uses.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from functools import lru_cache

from rapidfuzz import fuzz

from webgrove.envs.shop.normalize import normalize_color

# A fuzzy score must exceed this to count as a match (WebShop: `score > 85`).
FUZZY_THRESHOLD = 85
# spaCy's part-of-speech tags that WebShop counts as nouns ("PNOUN" is not a
# spaCy tag; the original lists it anyway, so it never matches).
NOUN_TAGS = frozenset({"PNOUN", "NOUN", "PROPN"})
SPACY_MODEL = "en_core_web_sm"

PRODUCT_KEYS = frozenset({"Title", "BulletPoints", "Description", "Attributes", "name", "query", "product_category"})
GOAL_KEYS = frozenset({"attributes", "goal_options", "price_upper", "name", "query", "product_category"})

# --- fuzzy matching -------------------------------------------------------------

# thefuzz's full_process: with force_ascii (the default) it deletes only the
# characters 128..255, then turns every non-word character (\W: underscore is a
# word character) into a space, lower-cases and strips.
_LATIN1_SUPPLEMENT = dict.fromkeys(range(128, 256))
_NON_WORD = re.compile(r"\W")
# rapidfuzz computes the same ratios from the longest common subsequence, which
# is never shorter than what difflib's SequenceMatcher finds; so a rapidfuzz
# score below this bound proves thefuzz's rounded score is <= 85 too. The bound
# sits a little under 85.5 (the smallest score that rounds to 86) for float slack.
_SURELY_BELOW = FUZZY_THRESHOLD + 0.4


@lru_cache(maxsize=1 << 16)
def _process_str(text: str) -> str:
    return _NON_WORD.sub(" ", text.translate(_LATIN1_SUPPLEMENT)).lower().strip()


def _process(value) -> str:
    # thefuzz turns non-strings into their str() first: a (name, value) tuple
    # becomes "('color', 'black')", i.e. the tokens of both name and value.
    return _process_str(value if isinstance(value, str) else str(value))


def _seq_ratio(a: str, b: str) -> int:
    """thefuzz 0.19's `ratio` on processed strings (difflib backend)."""
    if a == b:
        return 100
    if not a or not b:
        return 0
    return int(round(100 * difflib.SequenceMatcher(None, a, b).ratio()))


def _token_set_processed(p1: str, p2: str) -> int:
    if not p1 or not p2:
        return 0
    tokens1, tokens2 = set(p1.split()), set(p2.split())
    sect = " ".join(sorted(tokens1 & tokens2))
    combined_1to2 = (sect + " " + " ".join(sorted(tokens1 - tokens2))).strip()
    combined_2to1 = (sect + " " + " ".join(sorted(tokens2 - tokens1))).strip()
    return max(
        _seq_ratio(sect, combined_1to2),
        _seq_ratio(sect, combined_2to1),
        _seq_ratio(combined_1to2, combined_2to1),
    )


def token_set_score(s1, s2) -> int:
    """WebShop's `fuzz.token_set_ratio(s1, s2)`: an int in 0..100.

    Exactly thefuzz 0.19.0 with its default pure-Python backend. The argument
    order matters in rare cases (difflib is not symmetric); the reward keeps the
    original's order (purchased first, goal second).
    """
    if s1 is None or s2 is None:
        return 0
    return _token_set_processed(_process(s1), _process(s2))


def fuzzy_match(s1, s2) -> bool:
    """Whether `token_set_score(s1, s2) > FUZZY_THRESHOLD`, computed fast.

    rapidfuzz settles almost every pair: its 100 means one token set contains
    the other (thefuzz gives 100 too), and its score bounds thefuzz's from above,
    so under 85.4 means no match. Only scores in between are recomputed the
    slow, exact way.
    """
    if s1 is None or s2 is None:
        return False
    p1, p2 = _process(s1), _process(s2)
    if not p1 or not p2:
        return False
    fast = fuzz.token_set_ratio(p1, p2)
    if fast == 100:
        return True
    if fast < _SURELY_BELOW:
        return False
    return _token_set_processed(p1, p2) > FUZZY_THRESHOLD


# --- title nouns for the type score ----------------------------------------------


@lru_cache(maxsize=1)
def _spacy_pipeline():
    """spaCy's en_core_web_sm, loaded once; None when spaCy or the model is missing."""
    try:
        import spacy
    except ImportError:
        return None
    try:
        # Tags come from tok2vec + tagger + attribute_ruler; the parser and NER
        # do not change them, so they are left out for speed.
        return spacy.load(SPACY_MODEL, disable=["parser", "ner"])
    except OSError:  # the model package is not installed
        return None


@lru_cache(maxsize=1 << 16)
def _spacy_nouns(title: str) -> tuple[str, ...]:
    return tuple(t.text.lower() for t in _spacy_pipeline()(title) if t.pos_ in NOUN_TAGS)


# Words the heuristic never counts as nouns: function words and adjectives that
# are frequent in product titles. Tokens with digits and single letters are
# dropped too (sizes, counts, model numbers).
_NOT_NOUNS = frozenset(
    """
    a an the and or nor but of for with without in on at to by from into onto over under as per
    via vs is are be this that these those it its your our my his her their all any each every
    no not only more most very so than too up out off plus
    new best better good great perfect premium quality high low professional original genuine
    authentic compatible listed ultra super extra mini small medium large big little huge tiny
    soft hard heavy light long short full half pure natural organic free easy cute classic modern
    vintage fashion fashionable stylish comfortable comfy durable portable adjustable waterproof
    reusable disposable lightweight elegant beautiful simple fresh hot cold warm cool real
    """.split()
)
_WORD = re.compile(r"[a-z0-9][a-z0-9.'&]*")


@lru_cache(maxsize=1 << 16)
def heuristic_nouns(title: str) -> tuple[str, ...]:
    """A guess at the lower-cased nouns of a product title, without a tagger.

    Keeps lower-cased word tokens minus function words, common title adjectives,
    single letters and tokens with digits. spaCy tags most capitalized title words
    as proper nouns, so this stays close to it on typical Amazon titles.
    """
    nouns = []
    for token in _WORD.findall(title.lower()):
        token = token.rstrip(".'")
        if len(token) < 2 or token in _NOT_NOUNS or any(c.isdigit() for c in token):
            continue
        nouns.append(token)
    return tuple(nouns)


def noun_method(purchased_product: Mapping | None = None, goal: Mapping | None = None) -> str:
    """Which title-noun method `get_type_reward` uses for these two dicts.

    Returns "spacy" when spaCy and en_core_web_sm are installed; otherwise
    "title_nouns" when both dicts carry a `title_nouns` list (never mixed with the
    heuristic, so both titles are read the same way); otherwise "heuristic".
    Without arguments it tells whether spaCy is available ("spacy" or "heuristic").
    """
    if _spacy_pipeline() is not None:
        return "spacy"
    if (
        purchased_product is not None
        and goal is not None
        and purchased_product.get("title_nouns") is not None
        and goal.get("title_nouns") is not None
    ):
        return "title_nouns"
    return "heuristic"


def _title_nouns(purchased_product: Mapping, goal: Mapping) -> tuple[list[str], list[str]]:
    method = noun_method(purchased_product, goal)
    if method == "spacy":
        return list(_spacy_nouns(purchased_product["name"])), list(_spacy_nouns(goal["name"]))
    if method == "title_nouns":
        return (
            [w.lower() for w in purchased_product["title_nouns"]],
            [w.lower() for w in goal["title_nouns"]],
        )
    return list(heuristic_nouns(purchased_product["name"])), list(heuristic_nouns(goal["name"]))


# --- the reward's parts -----------------------------------------------------------


def _check_keys(d, required: frozenset, what: str) -> None:
    if not isinstance(d, Mapping):
        raise TypeError(f"{what} must be a dict, got {type(d).__name__}")
    missing = required.difference(d.keys())
    if missing:
        raise ValueError(f"{what} is missing keys {sorted(missing)}")


def _category_path(product_category: str) -> set[str]:
    return {part.strip() for part in product_category.split("›")}


def get_type_reward(purchased_product: Mapping, goal: Mapping) -> dict:
    """Whether the purchase is the same kind of product as the target.

    Returns {"r_type", "query_match", "category_match", "title_score"}:
    query_match compares the scrape queries, category_match needs two shared
    breadcrumb parts (in any order), title_score is the share of the target
    title's nouns (counted with repeats) found among the purchase's. r_type is
    1.0, or 0.5 when none of the three agree (title_score <= 0.2), 0.1 when
    title_score < 0.1 and 0.0 when it is 0. A target title without nouns scores 0.2.
    """
    query_match = purchased_product["query"] == goal["query"]
    shared_categories = _category_path(purchased_product["product_category"]) & _category_path(
        goal["product_category"]
    )
    category_match = len(shared_categories) >= 2

    purchased_nouns, desired_nouns = _title_nouns(purchased_product, goal)
    if desired_nouns:
        title_score = len(set(purchased_nouns) & set(desired_nouns)) / len(desired_nouns)
    else:
        title_score = 0.2

    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return {
        "r_type": r_type,
        "query_match": query_match,
        "category_match": category_match,
        "title_score": title_score,
    }


def get_attribute_reward(purchased_product: Mapping, goal: Mapping) -> tuple[float, int]:
    """(share of goal attributes the purchase has, how many it has).

    A goal attribute counts when it fuzzy-matches one of the product's
    `Attributes`, or else appears verbatim (case as given, in lower-cased text)
    in the title, the space-joined bullet points or the description.
    """
    goal_attrs = goal["attributes"]
    if not goal_attrs:
        raise ValueError("goal has no attributes; WebShop's attribute reward divides by their number")
    product_attrs = purchased_product["Attributes"]
    texts = None
    matched = 0
    for g_attr in goal_attrs:
        if any(fuzzy_match(p_attr, g_attr) for p_attr in product_attrs):
            matched += 1
            continue
        if texts is None:
            texts = (
                purchased_product["Title"].lower(),
                " ".join(purchased_product["BulletPoints"]).lower(),
                purchased_product["Description"].lower(),
            )
        if any(g_attr in text for text in texts):
            matched += 1
    return matched / len(goal_attrs), matched


def get_option_reward(purchased_options, goal_options) -> tuple[float | None, int]:
    """(share of goal options matched, how many), or (None, 0) without goal options.

    Both sides are color-normalized (`normalize_color`); a goal option counts
    when any purchased option value fuzzy-matches it. One purchased value may
    match several goal options, as in the original.

    Args:
        purchased_options: the selected option values.
        goal_options: goal option values, or (name, value) pairs as `get_reward`
            passes for dict-shaped goal options.
    """
    purchased = [normalize_color(o) for o in purchased_options]
    goals = [normalize_color(o) for o in goal_options]
    matched = sum(1 for g_option in goals if any(fuzzy_match(p_option, g_option) for p_option in purchased))
    r_option = matched / len(goals) if goals else None
    return r_option, matched


def _check_reward_inputs(purchased_product: Mapping, goal: Mapping, price: float, options: Mapping) -> None:
    _check_keys(purchased_product, PRODUCT_KEYS, "purchased_product")
    _check_keys(goal, GOAL_KEYS, "goal")
    if not isinstance(options, Mapping):
        raise TypeError(f"options must be a dict {{name: value}}, got {type(options).__name__}")
    if price is None or goal["price_upper"] is None:
        raise ValueError("price and goal['price_upper'] must be numbers")
    if goal["price_upper"] <= 0:
        # The original turns r_price into None here and then fails adding it.
        raise ValueError(f"goal['price_upper'] must be > 0, got {goal['price_upper']}")


def get_reward(purchased_product: Mapping, goal: Mapping, price: float, options: Mapping, verbose: bool = False):
    """WebShop's reward for buying `purchased_product` at `price` with `options`.

    Args:
        purchased_product: product dict (`Product.to_reward_dict()`).
        goal: goal dict (`Goal.to_reward_dict()`).
        price: the price paid.
        options: the selected options, {option name: value}.
        verbose: also return the components.

    Returns:
        The reward in [0, 1]; with verbose, (reward, info) where info holds
        r_type, r_att, w_att, query_match, category_match, title_score, then
        r_option and w_option when the goal has options, then r_price and w_price
        (the w_* are the weights of each part in the sum).
    """
    _check_reward_inputs(purchased_product, goal, price, options)
    type_info = get_type_reward(purchased_product, goal)
    r_price = bool(price <= goal["price_upper"])
    r_att, attrs_matched = get_attribute_reward(purchased_product, goal)

    # Quirk kept from the original: dict goal options are passed as
    # `.items()`, so each goal option is a (name, value) tuple. normalize_color
    # then turns it into a color only when the value *equals* a base color, and
    # the fuzzy score reads the tuple as "name value", so a purchased value that
    # is a token subset of "name value" matches ("large" matches
    # ("size", "x-large"); "light blue" -> "blue" matches ("color", "navy blue")).
    # List goal options (WebShop's human goals) are plain values.
    goal_options = goal["goal_options"]
    goal_option_items = list(goal_options.items()) if isinstance(goal_options, Mapping) else list(goal_options)
    r_option, options_matched = get_option_reward(list(options.values()), goal_option_items)

    n_attrs, n_options = len(goal["attributes"]), len(goal_option_items)
    denominator = n_attrs + n_options + 1
    reward = (attrs_matched + options_matched + r_price) / denominator * type_info["r_type"]
    if not verbose:
        return reward

    info = {
        "r_type": type_info["r_type"],
        "r_att": r_att,
        "w_att": n_attrs / denominator,
        "query_match": type_info["query_match"],
        "category_match": type_info["category_match"],
        "title_score": type_info["title_score"],
    }
    if r_option is not None:
        info["r_option"] = r_option
        info["w_option"] = n_options / denominator
    info["r_price"] = r_price
    info["w_price"] = 1 / denominator
    return reward, info
