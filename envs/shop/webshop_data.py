"""Load the original WebShop data files into a `Catalog`.

WebShop (Yao et al. 2022) ships its scraped products and instructions as JSON
(`setup.sh -d small|all`); put them in one folder and pass it as `data_dir`:

    items_shuffle*.json    products: a list of records (asin, name, pricing, options, ...)
    items_ins_v2*.json     {asin: {"attributes", "instruction", "instruction_attributes"}}
    items_human_ins.json   {asin: [{"instruction", "instruction_attributes", "instruction_options"}]}
                           (needed for goals="human")
    reviews.json           optional: [{"asin", "reviews", "average_rating"}]

Products are normalized as WebShop's `load_products` does
(`web_agent_site/engine/engine.py`) and goals are built as its
`get_synthetic_goals` / `get_human_goals` do (`web_agent_site/engine/goal.py`),
with two deliberate differences: every random draw (product prices inside a
price range, goal price limits) comes from a generator seeded by `seed` (WebShop
draws them from the unseeded global RNG, so its prices and limits change from
run to run), and problems raise `WebShopDataError` naming the file, the record
and the field instead of a bare KeyError. Records that WebShop skips are
skipped here too, and counted in the log.
"""
from __future__ import annotations

import itertools
import json
import logging
import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from webgrove.envs.shop.actions import price_clause
from webgrove.envs.shop.catalog import Catalog, Goal, Product, Review, make_splits
from webgrove.envs.shop.synthetic import NO_PRICE_LIMIT, PRICE_RANGE

logger = logging.getLogger(__name__)

GOAL_KINDS = ("synthetic", "human")
# WebShop's placeholder for products without an attributes entry.
DUMMY_ATTR = "DUMMY_ATTR"
# WebShop's price for products without pricing.
DEFAULT_PRICE = 100.0
# WebShop shuffles its goals with random.seed(233) and takes the first 500 as
# the test split; the same shuffle here gives the same test goals.
WEBSHOP_SHUFFLE_SEED = 233
# WebShop skips records whose asin is "nan" or longer than this.
MAX_ASIN_LENGTH = 10

_PRODUCT_FIELDS = ("name", "category", "query", "product_category", "full_description",
                   "small_description", "customization_options")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


MAX_PRICE = 1e9  # dollars; a larger "price" is a broken record, not a product


class WebShopDataError(ValueError):
    """A WebShop data file is missing, unreadable or malformed.

    Attributes:
        path: the file.
        index: position of the record in the file, when one record is at fault.
        asin: that record's asin, when known.
        field: the field at fault, when one is.
    """

    def __init__(self, path, problem: str, *, index: int | None = None, asin: str | None = None,
                 field: str | None = None):
        self.path, self.index, self.asin, self.field = Path(path), index, asin, field
        where = [str(path)]
        if index is not None or asin is not None:
            where.append(f"record {index} (asin {asin!r})")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(": ".join(where) + f": {problem}")


@dataclass(frozen=True)
class WebShopFiles:
    """The files `load_webshop` reads from a data folder."""

    products: Path
    attributes: Path
    human: Path | None
    reviews: Path | None


def find_webshop_files(data_dir, goals: str = "synthetic") -> WebShopFiles:
    """Locate WebShop's files in `data_dir`.

    A file is found by its exact name (`items_shuffle.json`) or, failing that,
    by the only file matching its pattern (`items_shuffle_1000.json`).

    Raises:
        WebShopDataError: a required file is absent (the message lists what was
            expected and what the folder holds), or a pattern matches several files.
    """
    _check_goal_kind(goals)
    folder = Path(data_dir)
    if not folder.is_dir():
        raise WebShopDataError(folder, "not a directory; pass the folder holding WebShop's data files")
    products = _find_one(folder, "items_shuffle")
    attributes = _find_one(folder, "items_ins_v2")
    human = _find_one(folder, "items_human_ins")
    reviews = _find_one(folder, "reviews")

    expected = {
        "items_shuffle*.json (products)": products,
        "items_ins_v2*.json (attributes and instructions)": attributes,
    }
    if goals == "human":
        expected["items_human_ins*.json (human instructions, for goals='human')"] = human
    missing = [name for name, path in expected.items() if path is None]
    if missing:
        present = sorted(p.name for p in folder.glob("*.json")) or ["no .json files"]
        raise WebShopDataError(
            folder,
            f"missing WebShop data files: {'; '.join(missing)}. Expected {', '.join(expected)}; "
            f"found {', '.join(present)}",
        )
    return WebShopFiles(products=products, attributes=attributes, human=human, reviews=reviews)


def load_webshop(data_dir, goals: str = "synthetic", seed: int = 0, num_products: int | None = None,
                 shuffle_seed: int = WEBSHOP_SHUFFLE_SEED) -> Catalog:
    """WebShop's products and goals as a `Catalog`.

    Args:
        data_dir: folder with WebShop's JSON files (see the module docstring).
        goals: "synthetic" (one goal per option combination of each product with
            an instruction in items_ins_v2) or "human" (items_human_ins.json).
        seed: seeds every random draw: a product's price inside its price range
            and each goal's price limit.
        num_products: read only the first this many product records, as WebShop's
            `num_products` does (None: all).
        shuffle_seed: seed of the `random.Random` that shuffles the goals before
            the split; WebShop's 233 puts WebShop's test goals in the test split.

    Returns:
        The catalog; its first min(500, len(goals) // 2) goals are the test split.

    Raises:
        WebShopDataError: missing files or malformed records (file, record, field named).
        ValueError: bad arguments, or no goal could be built.
    """
    _check_goal_kind(goals)
    if num_products is not None and (not isinstance(num_products, int) or num_products < 1):
        raise ValueError(f"num_products must be a positive int or None, got {num_products!r}")
    files = find_webshop_files(data_dir, goals)
    price_seq, goal_seq = np.random.SeedSequence(seed).spawn(2)
    price_rng, goal_rng = np.random.default_rng(price_seq), np.random.default_rng(goal_seq)

    attributes = _read_attributes(files.attributes)
    reviews = _read_reviews(files.reviews) if files.reviews is not None else {}
    products = _read_products(files.products, attributes, reviews, num_products, price_rng)

    if goals == "synthetic":
        goal_list = _synthetic_goals(products, attributes, files.attributes, goal_rng)
    else:
        goal_list = _human_goals(products, _read_human(files.human), files.human, goal_rng)
    if not goal_list:
        raise ValueError(f"no {goals} goals could be built from {files.products.name} "
                         f"({len(products)} products); see the log for what was skipped")
    random.Random(shuffle_seed).shuffle(goal_list)
    logger.info("WebShop catalog: %d products, %d %s goals", len(products), len(goal_list), goals)
    return Catalog(products=products, goals=goal_list, splits=make_splits(len(goal_list)),
                   name=f"webshop-{goals}")


# --- files ---------------------------------------------------------------------------


def _check_goal_kind(goals: str) -> None:
    if goals not in GOAL_KINDS:
        raise ValueError(f"goals must be one of {GOAL_KINDS}, got {goals!r}")


def _find_one(folder: Path, stem: str) -> Path | None:
    exact = folder / f"{stem}.json"
    if exact.is_file():
        return exact
    matches = sorted(p for p in folder.glob(f"{stem}*.json") if p.is_file())
    if len(matches) > 1:
        raise WebShopDataError(folder, f"several files match {stem}*.json ({', '.join(p.name for p in matches)}); "
                                       f"keep one, or name it {stem}.json")
    return matches[0] if matches else None


def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise WebShopDataError(path, f"not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}") from e
    except RecursionError:
        raise WebShopDataError(path, "nested too deeply to read (thousands of levels of arrays or "
                                     "objects): not a WebShop data file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise WebShopDataError(path, f"cannot be read: {e}") from e


def _is_str_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# --- products ------------------------------------------------------------------------


def _read_attributes(path: Path) -> dict[str, dict]:
    """items_ins_v2: {asin: {"attributes", "instruction", "instruction_attributes"}}, checked."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise WebShopDataError(path, f"expected an object {{asin: {{...}}}}, got {type(data).__name__}")
    for index, (asin, entry) in enumerate(data.items()):
        if not isinstance(entry, dict):
            raise WebShopDataError(path, f"expected an object, got {type(entry).__name__}", index=index, asin=asin)
        for field in ("attributes", "instruction_attributes"):
            if field in entry and entry[field] is not None and not _is_str_list(entry[field]):
                raise WebShopDataError(path, "expected a list of strings", index=index, asin=asin, field=field)
        if entry.get("instruction") is not None and not isinstance(entry["instruction"], str):
            raise WebShopDataError(path, "expected a string or null", index=index, asin=asin, field="instruction")
    return data


def _read_reviews(path: Path) -> dict[str, tuple[list, object]]:
    """reviews.json: [{"asin", "reviews", "average_rating"}] -> {asin: (reviews, rating)}."""
    data = _read_json(path)
    if not isinstance(data, list):
        raise WebShopDataError(path, f"expected a list of records, got {type(data).__name__}")
    out = {}
    for index, record in enumerate(data):
        asin = record.get("asin") if isinstance(record, dict) else None
        if not isinstance(asin, str):
            raise WebShopDataError(path, "expected a record with a string asin", index=index, field="asin")
        out[asin] = (record.get("reviews") or [], record.get("average_rating"))
    return out


def _read_products(path: Path, attributes: dict, reviews: dict, num_products: int | None,
                   price_rng: np.random.Generator) -> list[Product]:
    records = _read_json(path)
    if not isinstance(records, list):
        raise WebShopDataError(path, f"expected a list of product records, got {type(records).__name__}")
    if num_products is not None:
        records = records[:num_products]  # WebShop's files are already shuffled

    skipped: Counter = Counter()
    seen: set[str] = set()
    products = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise WebShopDataError(path, f"expected an object, got {type(record).__name__}", index=index)
        asin = record.get("asin")
        if not isinstance(asin, str):
            raise WebShopDataError(path, "missing or not a string", index=index, asin=asin, field="asin")
        if asin == "nan" or len(asin) > MAX_ASIN_LENGTH:
            skipped[f"asin 'nan' or longer than {MAX_ASIN_LENGTH} characters"] += 1
            continue
        if asin in seen:
            skipped["duplicate asin (the first record is kept)"] += 1
            continue
        seen.add(asin)
        product, empty_groups = _product(record, path, index, attributes, reviews, price_rng)
        if empty_groups:
            skipped["option groups with null values (group dropped, product kept)"] += empty_groups
        products.append(product)
    _log_counts(path, "product records", len(records), skipped)
    return products


def _product(record: dict, path: Path, index: int, attributes: dict, reviews: dict,
             price_rng: np.random.Generator) -> tuple[Product, int]:
    asin = record["asin"]

    def fail(field: str, problem: str) -> WebShopDataError:
        return WebShopDataError(path, problem, index=index, asin=asin, field=field)

    for field in _PRODUCT_FIELDS:
        if field not in record:
            raise fail(field, "missing")
    for field in ("name", "category", "query", "product_category"):
        if not isinstance(record[field], str):
            raise fail(field, f"expected a string, got {type(record[field]).__name__}")
    description = record["full_description"]
    if description is not None and not isinstance(description, str):
        raise fail("full_description", f"expected a string, got {type(description).__name__}")
    bullets = record["small_description"]
    if isinstance(bullets, str):
        bullets = [bullets]  # WebShop wraps a single string
    elif bullets is None:
        bullets = []
    elif not _is_str_list(bullets):
        raise fail("small_description", "expected a string or a list of strings")
    brand = record.get("brand")
    if brand is not None and not isinstance(brand, str):
        raise fail("brand", f"expected a string, got {type(brand).__name__}")

    pricing = _parse_pricing(record.get("pricing"), fail)
    # A range's price is drawn inside it, as WebShop's generate_product_prices does.
    price = pricing[0] if len(pricing) == 1 else float(price_rng.uniform(pricing[0], pricing[1]))
    options, empty_groups = _parse_options(record["customization_options"], fail)

    entry = attributes.get(asin)
    product_attributes = entry["attributes"] if entry and entry.get("attributes") is not None else [DUMMY_ATTR]

    if asin in reviews:
        raw_reviews, raw_rating = reviews[asin]
    else:
        raw_reviews = record.get("Reviews", record.get("reviews")) or []
        raw_rating = record.get("average_rating", record.get("Rating"))

    product = Product(
        asin=asin,
        title=record["name"],
        category=record["category"],
        query=record["query"].lower().strip(),
        product_category=record["product_category"],
        brand=brand or "",
        pricing=pricing,
        price=price,
        options=options,
        attributes=list(product_attributes),
        bullet_points=list(bullets),
        description=description or "",
        small_description=list(bullets),
        reviews=_parse_reviews(raw_reviews, fail),
        rating=_parse_rating(raw_rating, fail),
        title_nouns=None,  # unknown for real data: the reward falls back to spaCy or its heuristic
    )
    return product, empty_groups


def _parse_pricing(raw, fail) -> list[float]:
    """WebShop's pricing: "$a" -> [a], "$a to $b" -> [a, b]; empty -> [100.0]."""
    if raw is None or raw == "" or raw == []:
        return [DEFAULT_PRICE]
    if isinstance(raw, str):
        parts = raw.split("$")[1:]
        if not parts:
            raise fail("pricing", f"expected '$a' or '$a to $b', got {raw!r}")
    elif isinstance(raw, list):
        # Some dumps list the prices: numbers, or strings read like the string form.
        parts = [piece for item in raw
                 for piece in (item.split("$")[1:] or [item] if isinstance(item, str) else [item])]
    else:
        raise fail("pricing", f"expected a string or a list, got {type(raw).__name__}")
    prices = [_read_price(part, raw, fail) for part in parts[:2]]
    if len(prices) == 2 and prices[1] < prices[0]:
        raise fail("pricing", f"the range {raw!r} ends below where it starts")
    return prices


def _read_price(part, raw, fail) -> float:
    """One price of a pricing field: a number, or a string like "1,299.00"."""
    if isinstance(part, (int, float)) and not isinstance(part, bool):
        price = float(part)
    elif isinstance(part, str):
        if part.strip().startswith("-"):
            raise fail("pricing", f"negative price in {raw!r}")
        digits = re.sub(r"[^\d.]", "", part)  # "$1,299.00 " -> "1299.00", as WebShop does
        try:
            price = float(Decimal(digits))
        except InvalidOperation:
            raise fail("pricing", f"cannot read a price in {raw!r}") from None
    else:
        raise fail("pricing", f"expected prices, got {raw!r}")
    if not 0 <= price <= MAX_PRICE:  # also catches inf and nan
        raise fail("pricing", f"price {str(raw)[:40]!r} is outside 0..{MAX_PRICE:,.0f}")
    return price


def _parse_options(raw, fail) -> tuple[dict[str, list[str]], int]:
    """Option names and values lower-cased, "/" -> " | " in values; null groups dropped."""
    if raw is None or raw == {}:
        return {}, 0
    if not isinstance(raw, dict):
        raise fail("customization_options", f"expected an object or null, got {type(raw).__name__}")
    options: dict[str, list[str]] = {}
    empty_groups = 0
    for name, contents in raw.items():
        if contents is None:
            empty_groups += 1
            continue
        if not isinstance(contents, list):
            raise fail(f"customization_options.{name}", "expected a list of {value, image} objects")
        values = []
        for i, content in enumerate(contents):
            value = content.get("value") if isinstance(content, dict) else None
            if not isinstance(value, str):
                raise fail(f"customization_options.{name}[{i}].value", "missing or not a string")
            values.append(value.strip().replace("/", " | ").lower())
        options[name.lower()] = values
    return options, empty_groups


def _parse_reviews(raw, fail) -> list[Review]:
    if not isinstance(raw, list):
        raise fail("Reviews", f"expected a list, got {type(raw).__name__}")
    reviews = []
    for i, r in enumerate(raw):
        if not isinstance(r, dict):
            raise fail(f"Reviews[{i}]", "expected an object")
        score = _parse_number(r.get("score", r.get("stars")))
        if score is None:
            raise fail(f"Reviews[{i}].score", f"expected a star rating, got {r.get('score', r.get('stars'))!r}")
        body = r.get("body", r.get("review")) or ""
        title = r.get("title") or ""
        if not isinstance(body, str) or not isinstance(title, str):
            raise fail(f"Reviews[{i}]", "title and body must be strings")
        reviews.append(Review(score=int(round(score)), title=title, body=body))
    return reviews


def _parse_rating(raw, fail) -> float | None:
    if raw is None or raw == "" or raw == "N.A.":
        return None
    rating = _parse_number(raw)
    if rating is None:
        raise fail("average_rating", f"expected a number, got {raw!r}")
    return rating


def _parse_number(raw) -> float | None:
    """A finite number from a number or a text ("4.5 out of 5 stars" -> 4.5); None if there is none."""
    if isinstance(raw, str):
        m = _NUMBER.search(raw)
        raw = m.group() if m else None
    if not isinstance(raw, (int, float, str)) or isinstance(raw, bool):
        return None
    try:
        number = float(raw)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return number if math.isfinite(number) else None


def _log_counts(path: Path, what: str, total: int, skipped: Counter) -> None:
    details = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items())) or "none"
    logger.info("%s: %d %s; skipped: %s", path.name, total, what, details)


# --- goals ---------------------------------------------------------------------------


def _price_limit(rng: np.random.Generator, price: float) -> tuple[float, str]:
    """WebShop's limit: the larger of two of the first four multiples of 10 above the price."""
    candidates = [p for p in PRICE_RANGE if p > price][:4]
    if len(candidates) < 2:
        return NO_PRICE_LIMIT, ""
    i, j = rng.choice(len(candidates), size=2, replace=False)
    limit = max(candidates[i], candidates[j])
    return limit, price_clause(limit)


def _goal(product: Product, instruction: str, attributes: list[str], goal_options: dict[str, str],
          price_upper: float, options_as_list: bool = False) -> Goal:
    # the original data has no title nouns: the reward falls back to spaCy or the heuristic
    return Goal.for_product(product, instruction, attributes, goal_options, price_upper,
                            use_title_nouns=False, options_as_list=options_as_list)


def _synthetic_goals(products: list[Product], attributes: dict, path: Path,
                     rng: np.random.Generator) -> list[Goal]:
    """One goal per combination of a product's option values (WebShop's get_synthetic_goals)."""
    goals = []
    skipped: Counter = Counter()
    for product in products:
        entry = attributes.get(product.asin)
        if entry is None:
            skipped[f"products without an entry in {path.name}"] += 1
            continue
        instruction = entry.get("instruction")
        if instruction is None:
            skipped["products without an instruction"] += 1
            continue
        instruction_attributes = entry.get("instruction_attributes")
        if not instruction_attributes:
            index = list(attributes).index(product.asin)
            raise WebShopDataError(path, "an instruction needs at least one attribute (WebShop asserts this)",
                                   index=index, asin=product.asin, field="instruction_attributes")
        price_upper, price_text = _price_limit(rng, product.price)
        names = sorted(product.options)
        combinations = list(itertools.product(*(product.options[n] for n in names)))
        if not combinations:
            skipped["products with an empty option group (no combination)"] += 1
        for combination in combinations:
            goal_options = dict(zip(names, combination))
            option_text = ", and ".join(f"{k}: {v}" for k, v in goal_options.items())
            option_text = f" with {option_text}" if option_text else ""
            goals.append(_goal(product, f"{instruction}{option_text}{price_text}", instruction_attributes,
                               goal_options, price_upper))
    loaded = {p.asin for p in products}
    unknown = sum(1 for asin in attributes if asin not in loaded)
    if unknown:
        skipped["entries for asins not among the loaded products"] += unknown
    _log_counts(path, "products looked up for instructions", len(products), skipped)
    return goals


def _read_human(path: Path) -> dict[str, list[dict]]:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise WebShopDataError(path, f"expected an object {{asin: [instructions]}}, got {type(data).__name__}")
    for index, (asin, instructions) in enumerate(data.items()):
        if not isinstance(instructions, list):
            raise WebShopDataError(path, "expected a list of instructions", index=index, asin=asin)
        for k, ins in enumerate(instructions):
            where = f"[{k}]"
            if not isinstance(ins, dict):
                raise WebShopDataError(path, "expected an object", index=index, asin=asin, field=where)
            if not isinstance(ins.get("instruction"), str):
                raise WebShopDataError(path, "missing or not a string", index=index, asin=asin,
                                       field=f"{where}.instruction")
            if not _is_str_list(ins.get("instruction_attributes")):
                raise WebShopDataError(path, "missing or not a list of strings", index=index, asin=asin,
                                       field=f"{where}.instruction_attributes")
            opts = ins.get("instruction_options")
            if not (_is_str_list(opts) or (isinstance(opts, dict) and all(isinstance(v, str) for v in opts.values()))):
                raise WebShopDataError(path, "missing or not a list of option values", index=index, asin=asin,
                                       field=f"{where}.instruction_options")
    return data


def _name_options(values, product: Product) -> dict[str, str]:
    """Human goals list option values only; name each after the target's option holding it.

    Values no option of the target holds get "option_i" (i: position in the list),
    so the goal keeps one entry per listed value, as WebShop counts them.
    """
    if isinstance(values, dict):
        return dict(values)
    named: dict[str, str] = {}
    for i, value in enumerate(values):
        key = value.strip().replace("/", " | ").lower()
        name = next((n for n, vs in product.options.items() if key in vs and n not in named), None)
        if name is None:
            name = f"option_{i}"
            while name in named:
                name += "_"
        named[name] = value
    return named


def _human_goals(products: list[Product], human: dict, path: Path, rng: np.random.Generator) -> list[Goal]:
    """One goal per human-written instruction (WebShop's get_human_goals)."""
    goals = []
    skipped: Counter = Counter()
    total = 0
    for product in products:
        for ins in human.get(product.asin, ()):
            total += 1
            attributes = ins["instruction_attributes"]
            if not attributes:
                skipped["instructions without attributes"] += 1
                continue
            price_upper, price_text = _price_limit(rng, product.price)
            goal_options = _name_options(ins["instruction_options"], product)
            # Human goals reach WebShop's reward as a list of values, not a dict.
            goals.append(_goal(product, ins["instruction"].strip(".") + price_text, attributes, goal_options,
                               price_upper, options_as_list=True))
    known = {p.asin for p in products}
    unknown = sum(len(v) for asin, v in human.items() if asin not in known)
    if unknown:
        skipped["instructions for asins not among the loaded products"] += unknown
    _log_counts(path, "human instructions", total + unknown, skipped)
    return goals
