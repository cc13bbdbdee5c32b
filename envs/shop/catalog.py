"""Products, goals and the catalog that holds them.

A `Catalog` is what every shop env, the HTTP site and the scripted oracle read:
products (with the WebShop fields the reward needs), goals (instructions with
their target attributes, options and price limit) and fixed train/test splits.
It comes either from the synthetic generator (`envs/shop/synthetic.py`) or from
the original WebShop files (`envs/shop/webshop_data.py`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

# WebShop's test split is its first 500 goals after a seeded shuffle; we keep that size.
TEST_SPLIT_SIZE = 500


@dataclass
class Review:
    score: int  # 1..5 stars
    title: str
    body: str


@dataclass
class Product:
    """One product, with the fields WebShop pages and WebShop's reward use.

    Attributes:
        asin: unique id, upper case as in WebShop (e.g. "B000SYN042").
        title: the product name shown on pages (WebShop's `Title` / `name`).
        category: top-level category (WebShop's `category`, e.g. "beauty").
        query: the product-type query the item was scraped with (WebShop's `query`).
        product_category: breadcrumb "A › B › C" (WebShop's `product_category`).
        brand: brand name (also part of the title).
        pricing: [price] or [low, high] as parsed from WebShop's "$a" / "$a to $b".
        price: the price shown on the item page and paid on purchase.
        options: customization options {name: [values]}, values lower-cased.
        attributes: the product's attribute phrases (WebShop's `Attributes`).
        bullet_points: feature bullets (WebShop's `BulletPoints`).
        description: long description (WebShop's `Description`).
        small_description: short description lines (WebShop's `small_description`).
        reviews: customer reviews.
        rating: mean stars, or None ("N.A." on the page).
        title_nouns: lower-cased noun words of the title when the source knows them
            (the synthetic generator does); used by the reward's type score when spaCy
            is not installed.
    """

    asin: str
    title: str
    category: str
    query: str
    product_category: str
    brand: str
    pricing: list[float]
    price: float
    options: dict[str, list[str]] = field(default_factory=dict)
    attributes: list[str] = field(default_factory=list)
    bullet_points: list[str] = field(default_factory=list)
    description: str = ""
    small_description: list[str] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)
    rating: float | None = None
    title_nouns: list[str] | None = None

    def to_reward_dict(self) -> dict:
        """The product in the dict shape WebShop's reward functions take."""
        d = {
            "asin": self.asin,
            "Title": self.title,
            "name": self.title,
            "BulletPoints": list(self.bullet_points),
            "Description": self.description,
            "Attributes": list(self.attributes),
            "query": self.query,
            "category": self.category,
            "product_category": self.product_category,
            "Price": self.price,
            "pricing": list(self.pricing),
            "options": {k: list(v) for k, v in self.options.items()},
        }
        if self.title_nouns is not None:
            d["title_nouns"] = list(self.title_nouns)
        return d


@dataclass
class Goal:
    """One shopping instruction and what a purchase must match.

    Attributes:
        asin: the target product the instruction was written for.
        instruction: the instruction text shown to the agent (WebShop's `instruction_text`).
        attributes: attribute phrases the purchase should have (WebShop's `attributes`).
        goal_options: {option name: value} the purchase should select (WebShop's `goal_options`).
            Human goals from `items_human_ins.json` carry values only; their names are
            recovered from the target product where possible, else "option_i".
        price_upper: the price limit (1e6 when the instruction states none, as in WebShop).
        query, name, product_category, category: copied from the target product, as WebShop's
            goal dicts do; the reward's type score compares them with the purchase.
        title_nouns: the target title's noun words when known (see Product.title_nouns).
        options_as_list: hand `goal_options` to the reward as a list of values, as WebShop does
            for human goals (its reward treats a dict's items as (name, value) pairs, which
            scores differently).
    """

    asin: str
    instruction: str
    attributes: list[str]
    goal_options: dict[str, str]
    price_upper: float
    query: str
    name: str
    product_category: str
    category: str
    title_nouns: list[str] | None = None
    options_as_list: bool = False

    @classmethod
    def for_product(cls, product: Product, instruction: str, attributes: list[str],
                    goal_options: dict[str, str], price_upper: float, *, use_title_nouns: bool = True,
                    options_as_list: bool = False) -> "Goal":
        """A goal whose target is `product`; query, name and categories are copied from it."""
        nouns = list(product.title_nouns) if use_title_nouns and product.title_nouns is not None else None
        return cls(asin=product.asin, instruction=instruction, attributes=list(attributes),
                   goal_options=goal_options, price_upper=price_upper, query=product.query,
                   name=product.title, product_category=product.product_category,
                   category=product.category, title_nouns=nouns, options_as_list=options_as_list)

    def to_reward_dict(self) -> dict:
        """The goal in the dict shape WebShop's reward functions take."""
        d = {
            "asin": self.asin,
            "instruction_text": self.instruction,
            "attributes": list(self.attributes),
            "goal_options": list(self.goal_options.values()) if self.options_as_list
            else dict(self.goal_options),
            "price_upper": self.price_upper,
            "query": self.query,
            "name": self.name,
            "product_category": self.product_category,
            "category": self.category,
        }
        if self.title_nouns is not None:
            d["title_nouns"] = list(self.title_nouns)
        return d


@dataclass
class Catalog:
    """Products, goals and the fixed splits (lists of indices into `goals`)."""

    products: list[Product]
    goals: list[Goal]
    splits: dict[str, list[int]]
    name: str = "catalog"

    def __post_init__(self) -> None:
        self._by_asin = {p.asin: i for i, p in enumerate(self.products)}

    def product(self, asin: str) -> Product:
        """The product with this asin (case-insensitive). Raises KeyError if absent."""
        i = self._by_asin.get(asin)
        if i is None:
            i = self._by_asin.get(asin.upper())
        if i is None:
            raise KeyError(f"no product with asin {asin!r}")
        return self.products[i]

    def has_product(self, asin: str) -> bool:
        return asin in self._by_asin or asin.upper() in self._by_asin

    def split_goals(self, split: str) -> list[Goal]:
        """The goals of a split, in the split's fixed order (goal_id = position)."""
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; choose from {sorted(self.splits)}")
        return [self.goals[i] for i in self.splits[split]]


def make_splits(num_goals: int, test_size: int = TEST_SPLIT_SIZE) -> dict[str, list[int]]:
    """Fixed splits: the first `test_size` goals are the test split, the rest train.

    Goals must already be in their final, seeded order. With fewer than
    2 * test_size goals (small fixtures), half of them go to test.
    """
    n_test = min(test_size, num_goals // 2) if num_goals < 2 * test_size else test_size
    return {"test": list(range(n_test)), "train": list(range(n_test, num_goals))}
