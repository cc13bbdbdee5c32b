"""BM25 product search, as WebShop's search engine (which used Lucene's BM25).

We use `bm25s` (sparse-matrix BM25, Lucene's scoring variant) rather than a
hand-written scorer: it is maintained, fast at 100k documents, and matches
the original's ranking function. Each product is one document made of its
title, description, bullets and option values. A small LRU cache keeps the
result lists of recent queries, since tree search issues the same query many
times.
"""
from __future__ import annotations

import contextlib
import gc
import re
from array import array
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from webgrove.envs.shop.catalog import Product

RESULTS_TOTAL = 50  # WebShop returns at most 50 results ...
RESULTS_PER_PAGE = 10  # ... shown 10 a page

_TOKEN = re.compile(r"[a-z0-9]+")
# A short English stopword list: the words instructions are padded with.
STOPWORDS = frozenset(
    """a an and are as at be by for from has have i i'm im in is it its looking me my need of on or
    that the this to want was were will with would you your please find get buy show lower than price
    dollars dollar""".split()
)


def tokenize(text: str) -> list[str]:
    """Lower-cased alphanumeric tokens without stopwords."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS]


def product_document(product: Product) -> str:
    """The text a product is indexed by."""
    option_values = " ".join(v for values in product.options.values() for v in values)
    return " ".join(
        [product.title, product.description, " ".join(product.bullet_points), option_values]
    )


class SearchIndex:
    """BM25 over a list of products; `search(query)` returns product indices, best first.

    `SearchIndex(products)` builds the index in memory; `save(folder)` writes it with
    bm25s's own format and `SearchIndex.load(folder)` memory-maps it back (read-only,
    shared by every process that maps the same files), with identical results.
    """

    def __init__(self, products: list[Product] | None = None, cache_size: int = 4096, *, bm25=None):
        if bm25 is None:
            bm25 = _build_bm25(products or [])
        self._bm25 = bm25
        self.num_products = int(bm25.scores["num_docs"])
        self._vocab = bm25.vocab_dict
        self._cache: OrderedDict[str, list[int]] = OrderedDict()
        self._cache_size = cache_size

    def save(self, folder) -> None:
        """Write the index to `folder` with bm25s's `save` (numpy arrays, vocab and params)."""
        self._bm25.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder, cache_size: int = 4096, mmap: bool = True) -> "SearchIndex":
        """The index saved in `folder`; with `mmap` its score arrays stay on disk, mapped read-only."""
        import bm25s

        return cls(cache_size=cache_size, bm25=bm25s.BM25.load(str(folder), mmap=mmap, show_progress=False))

    def search(self, query: str, top_k: int = RESULTS_TOTAL) -> list[int]:
        """Indices of the best `top_k` products with a positive score; ties keep catalog order."""
        key = f"{top_k}\x00{query.lower().strip()}"
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        result = self._search_uncached(query, top_k)
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    def _search_uncached(self, query: str, top_k: int) -> list[int]:
        tokens = [t for t in tokenize(query) if t in self._vocab]
        if not tokens or self.num_products == 0:
            return []
        scores = self.scores(tokens)  # (num_products,)
        k = min(top_k, self.num_products)
        top = _top_positive(scores, k)
        if top is None:  # a tie at the k-th score: the whole-catalog selection, as always
            top = np.argpartition(-scores, k - 1)[:k] if k < self.num_products else np.arange(self.num_products)
        # Sort by score descending, then by index so equal scores are ordered deterministically.
        order = np.lexsort((top, -scores[top]))
        ranked = top[order]
        return [int(i) for i in ranked if scores[i] > 0]

    def scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 scores of every product for these (in-vocabulary) tokens: bm25s's `get_scores`, bit for bit.

        bm25s adds each token's postings with `np.add.at`; a token's postings name each
        document once, so a fancy-indexed `+=` performs the same float additions in the
        same order, several times faster.
        """
        s = self._bm25.scores
        data, indices, indptr = s["data"], s["indices"], s["indptr"]
        scores = np.zeros(self.num_products, dtype=np.dtype(self._bm25.dtype))
        for token_id in (self._vocab[t] for t in tokens):
            start, end = int(indptr[token_id]), int(indptr[token_id + 1])
            scores[indices[start:end]] += data[start:end]
        return scores


def _top_positive(scores: np.ndarray, k: int) -> np.ndarray | None:
    """The k best of the positive scores, when that set is unique; None when the k-th best
    score ties with the next (then which tied products make the cut is argpartition's choice
    over the whole catalog, and the caller makes it exactly as before).

    Only products with a positive score are returned, so selecting among them gives the
    same products as selecting over the whole catalog whenever the cut is unique.
    """
    positive = np.flatnonzero(scores > 0)
    if len(positive) <= k:
        return positive
    neg = -scores[positive]
    part = np.argpartition(neg, k)  # part[:k]: the k best; part[k]: the next one
    if neg[part[k]] <= neg[part[:k]].max():
        return None
    return positive[part[:k]]


class TokenIds:
    """The tokenized products as bm25s indexes them: `.ids` (each document's token ids) and `.vocab`.

    The ids sit in one flat int32 array (4 bytes a token, where lists of token strings cost
    about 60), so a million products tokenize into a few hundred MB. Ids are given in order
    of first appearance. BM25 scores depend on the tokens, not on their ids, so the index
    ranks exactly as one bm25s builds from the token strings.
    """

    def __init__(self, products):
        vocab: dict[str, int] = {}
        flat, offsets = array("i"), array("q", [0])
        for product in products:
            flat.extend([vocab.setdefault(t, len(vocab)) for t in tokenize(product_document(product))])
            offsets.append(len(flat))
        self.vocab = vocab
        self._flat = np.frombuffer(flat, dtype=np.int32) if flat else np.zeros(0, dtype=np.int32)
        self._offsets = np.frombuffer(offsets, dtype=np.int64)
        self.ids = _Documents(self._flat, self._offsets)


class _Documents(Sequence):
    """Each document's token ids as a list, made when read (bm25s reads them three times)."""

    def __init__(self, flat: np.ndarray, offsets: np.ndarray):
        self._flat, self._offsets = flat, offsets

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: int) -> list[int]:
        return self._flat[self._offsets[i]:self._offsets[i + 1]].tolist()

    def __iter__(self):
        flat, offsets = self._flat, self._offsets.tolist()
        return (flat[a:b].tolist() for a, b in zip(offsets, offsets[1:]))


def build_bm25(corpus: TokenIds):
    """bm25s's Lucene BM25 over the tokenized products."""
    import bm25s  # imported here: only building or loading an index needs it

    bm25 = bm25s.BM25(method="lucene")
    bm25.index(corpus, show_progress=False)
    return bm25


@contextlib.contextmanager
def cyclic_gc_paused():
    """Pause the cyclic GC: catalogs are large acyclic object graphs, and GC passes while
    tokenizing or indexing them find nothing and cost a third of the time at 100k products."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _build_bm25(products: list[Product]):
    with cyclic_gc_paused():
        return build_bm25(TokenIds(products))
