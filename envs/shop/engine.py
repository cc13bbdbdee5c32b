"""The shop's state machine, shared by the text env and the HTTP site.

A `ShopState` is where one shopper is (page, query, result page, product,
selected options, sub-page). `ShopEngine.step(state, action)` applies one
WebShop action (`search[query]` or `click[label]`) and returns the next state;
`ShopEngine.page(state, goal)` builds the page model that `envs/shop/pages.py`
renders as text, rich text or HTML. States are small frozen tuples, so
snapshots for tree search are cheap and exact.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from webgrove.envs.shop.actions import (BACK_TO_SEARCH, BUY_NOW, NEXT_PAGE, PREV_PAGE, RESERVED_LABELS,  # noqa: F401
                                        SEARCH_ACTION, SUB_PAGE_LABELS, InvalidAction, parse_action)
from webgrove.envs.shop.catalog import Catalog, Goal, Product
from webgrove.envs.shop.search import RESULTS_PER_PAGE, SearchIndex
from webgrove.envs.shop.store import AUTO_MIN_BYTES, StoredCatalog, cache_root, open_or_build, store_folder

# Page kinds
SEARCH, RESULTS, ITEM, SUB, DONE = "search", "results", "item", "item_sub", "done"
SUB_PAGES = tuple(SUB_PAGE_LABELS)


class ShopState(NamedTuple):
    """Where a shopper is. Immutable and picklable: it is the env's snapshot."""

    page: str = SEARCH
    query: str = ""
    page_num: int = 1
    asin: str = ""
    options: tuple[tuple[str, str], ...] = ()  # selected (option name, value), in name order
    sub_page: str = ""

    def selected(self) -> dict[str, str]:
        return dict(self.options)


@dataclass
class Purchase:
    """What a `click[buy now]` bought, and what it earned."""

    asin: str
    options: dict[str, str]
    price: float
    reward: float
    reward_info: dict = field(default_factory=dict)


class ShopEngine:
    """Catalog + search index + the rules of every page."""

    def __init__(self, catalog: Catalog | StoredCatalog, cache_size: int = 65536, index: SearchIndex | None = None):
        self.catalog = catalog
        self.index = index if index is not None else SearchIndex(catalog.products)
        # Pages repeat a lot (agents revisit results pages, tree search replays states):
        # clickables depend on the state alone, so memoize them, bounded.
        self._clickables: dict[ShopState, tuple[str, ...]] = {}
        self._cache_size = cache_size

    # -- queries -------------------------------------------------------------
    def results(self, query: str) -> list[Product]:
        return [self.catalog.products[i] for i in self.index.search(query)]

    def num_pages(self, query: str) -> int:
        n = len(self.index.search(query))
        return max(1, -(-n // RESULTS_PER_PAGE))

    def page_results(self, state: ShopState) -> list[Product]:
        hits = self.index.search(state.query)
        start = (state.page_num - 1) * RESULTS_PER_PAGE
        return [self.catalog.products[i] for i in hits[start:start + RESULTS_PER_PAGE]]

    # -- what can be clicked -------------------------------------------------
    def clickables(self, state: ShopState) -> tuple[str, ...]:
        """Lower-cased labels clickable on this page, in page order."""
        hit = self._clickables.get(state)
        if hit is None:
            if len(self._clickables) >= self._cache_size:
                self._clickables.clear()
            hit = self._clickables[state] = tuple(self._compute_clickables(state))
        return hit

    def _compute_clickables(self, state: ShopState) -> list[str]:
        if state.page == SEARCH or state.page == DONE:
            return []
        labels = [BACK_TO_SEARCH.lower()]
        if state.page == RESULTS:
            if state.page_num > 1:
                labels.append(PREV_PAGE.lower())
            if state.page_num < self.num_pages(state.query):
                labels.append(NEXT_PAGE.lower())
            labels += [p.asin.lower() for p in self.page_results(state)]
        elif state.page == ITEM:
            product = self.catalog.product(state.asin)
            labels.append(PREV_PAGE.lower())
            for values in product.options.values():
                labels += [v.lower() for v in values]
            labels += [SUB_PAGE_LABELS[s].lower() for s in SUB_PAGES]
            labels.append(BUY_NOW.lower())
        elif state.page == SUB:
            labels.append(PREV_PAGE.lower())
        return labels

    def available_actions(self, state: ShopState) -> list[str]:
        if state.page == SEARCH:
            return [SEARCH_ACTION]
        return [f"click[{label}]" for label in self.clickables(state)]

    # -- transitions ---------------------------------------------------------
    def step(self, state: ShopState, action: str) -> ShopState:
        """The state after `action`. Raises InvalidAction (state unchanged) if not valid here."""
        verb, arg = parse_action(action)
        if state.page == DONE:
            raise InvalidAction("the episode is over: the product was already bought")
        if verb == "search":
            if state.page != SEARCH:
                raise InvalidAction("there is no search bar on this page; click[back to search] first")
            if not arg:
                raise InvalidAction("search[] needs a query, e.g. search[red shampoo]")
            return ShopState(page=RESULTS, query=arg, page_num=1)
        return self._click(state, arg.lower())

    def _click(self, state: ShopState, label: str) -> ShopState:
        if state.page == SEARCH:
            raise InvalidAction("the search page has only a search bar; use search[query]")
        if label not in self.clickables(state):
            raise InvalidAction(f"no clickable {label!r} on this page; see info['available_actions']")
        if label == BACK_TO_SEARCH.lower():
            return ShopState()
        if state.page == RESULTS:
            if label == NEXT_PAGE.lower():
                return state._replace(page_num=state.page_num + 1)
            if label == PREV_PAGE.lower():
                return state._replace(page_num=state.page_num - 1)
            asin = self.catalog.product(label).asin
            return state._replace(page=ITEM, asin=asin, options=(), sub_page="")
        if state.page == ITEM:
            if label == PREV_PAGE.lower():
                return state._replace(page=RESULTS, asin="", options=(), sub_page="")
            if label == BUY_NOW.lower():
                return state._replace(page=DONE)
            for sub, text in SUB_PAGE_LABELS.items():
                if label == text.lower():
                    return state._replace(page=SUB, sub_page=sub)
            return state._replace(options=self._select(state, label))
        # SUB
        return state._replace(page=ITEM, sub_page="")

    def _select(self, state: ShopState, value: str) -> tuple[tuple[str, str], ...]:
        product = self.catalog.product(state.asin)
        selected = state.selected()
        for name, values in product.options.items():
            for v in values:
                if v.lower() == value:
                    selected[name] = v
                    return tuple(sorted(selected.items()))
        raise InvalidAction(f"{value!r} is not an option of this product")

    # -- purchase ------------------------------------------------------------
    def purchase(self, state: ShopState, goal: Goal) -> Purchase:
        """Score the bought product against the goal with WebShop's reward."""
        from webgrove.envs.shop.reward import get_reward

        product = self.catalog.product(state.asin)
        options = state.selected()
        reward, info = get_reward(product.to_reward_dict(), goal.to_reward_dict(),
                                  product.price, options, verbose=True)
        info = dict(info, reward=float(reward))
        return Purchase(asin=product.asin, options=options, price=product.price,
                        reward=float(reward), reward_info=info)


@functools.lru_cache(maxsize=8)
def synthetic_engine(num_products: int = 1000, seed: int = 0, cache_root: str | None = None) -> ShopEngine:
    """The engine over the built-in synthetic catalog, shared by every env in the process.

    With `cache_root`, the catalog and index are mapped from a store there (built once per
    machine, see `envs/shop/store.py`) instead of built in this process.
    """
    from webgrove.envs.shop.synthetic import generate_catalog

    if cache_root is None:
        return ShopEngine(generate_catalog(num_products=num_products, seed=seed))
    identity = {"source": "synthetic", "num_products": num_products, "seed": seed}
    folder = store_folder(Path(cache_root), f"synthetic-{num_products}-seed{seed}", identity)
    catalog, index = open_or_build(folder, identity, lambda: generate_catalog(num_products=num_products, seed=seed))
    return ShopEngine(catalog, index=index)


@functools.lru_cache(maxsize=4)
def webshop_engine(data_dir: str, goals: str = "synthetic", num_products: int | None = None,
                   cache_root: str | None = None) -> ShopEngine:
    """The engine over the original WebShop data files in `data_dir` (mapped from a store under
    `cache_root` when given; the store's identity includes each file's size and mtime)."""
    from webgrove.envs.shop.webshop_data import find_webshop_files, load_webshop

    if cache_root is None:
        return ShopEngine(load_webshop(data_dir, goals=goals, num_products=num_products))
    files = find_webshop_files(data_dir, goals)
    identity = {"source": "webshop", "goals": goals, "num_products": num_products,
                "files": [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns]
                          for p in (files.products, files.attributes, files.human, files.reviews) if p is not None]}
    folder = store_folder(Path(cache_root), f"webshop-{goals}", identity)
    catalog, index = open_or_build(folder, identity, lambda: load_webshop(data_dir, goals=goals,
                                                                          num_products=num_products))
    return ShopEngine(catalog, index=index)


def get_engine(data_dir: str | None = None, goals: str = "synthetic", num_products: int | None = None,
               catalog_seed: int = 0, catalog_cache: str | None = None) -> ShopEngine:
    """The shared engine for a synthetic catalog, or for WebShop's files when `data_dir` is set.

    `num_products` defaults to 1,000 for the synthetic catalog and to every product in the files.
    `catalog_cache` is where the catalog store lives: a folder, "auto" or "off" (None: the
    process default, $WEBGROVE_CATALOG_CACHE, else "auto"; see `envs/shop/store.py`).
    """
    if data_dir is not None:
        root = cache_root(catalog_cache, _products_file_size(str(data_dir), goals), big=AUTO_MIN_BYTES)
        return webshop_engine(str(data_dir), goals, num_products, None if root is None else str(root))
    if goals != "synthetic":
        raise ValueError(f"goals={goals!r} needs the original WebShop files: pass data_dir=PATH")
    n = 1000 if num_products is None else int(num_products)
    root = cache_root(catalog_cache, n)
    return synthetic_engine(n, int(catalog_seed), None if root is None else str(root))


def _products_file_size(data_dir: str, goals: str) -> int:
    from webgrove.envs.shop.webshop_data import find_webshop_files

    return find_webshop_files(data_dir, goals).products.stat().st_size
