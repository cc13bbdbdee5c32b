"""BM25 product search, as WebShop's search engine (which used Lucene's BM25).

We use `bm25s` (sparse-matrix BM25, Lucene's scoring variant) rather than a
hand-written scorer: it is maintained, fast at 100k documents, and matches
the original's ranking function. Each product is one document made of its
title, description, bullets and option values. A small LRU cache keeps the
result lists of recent queries, since tree search issues the same query many
times.

A search scores a few candidates, not the whole catalog, when it can prove the
result is the exhaustive one (`SearchIndex._pruned_top`, bounds in `ScoreBounds`);
otherwise it scores every product. Products tied at the 50th score fill the last
slots in catalog order in catalogs of 200k products or more, by numpy's choice in
smaller ones (TIES_BY_INDEX_MIN_PRODUCTS).
"""
from __future__ import annotations

import contextlib
import gc
import math
import re
from array import array
from collections import Counter, OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from webgrove.envs.shop.catalog import Product

RESULTS_TOTAL = 50  # WebShop returns at most 50 results ...
RESULTS_PER_PAGE = 10  # ... shown 10 a page
# The pruned search (SearchIndex._pruned_top): terms in at least this share of the products get a
# dense row of quantized scores (1 byte a product); it gives up (and scores every product) beyond
# max(PRUNE_MIN_CANDIDATES, num_products / 4) candidates; PRUNE_SAMPLE products are scored first.
DENSE_MIN_FRACTION = 1 / 32
# Below this many products every product is scored: the exhaustive path is faster there (1,000
# products: p50 0.06 ms against 0.35 pruned; 100,000: equal p50, p99 1.6 against 2.1 ms; at 1M the
# pruned path wins, p50 3.0 ms against ~17). Same results either way: the pruned path is exact.
PRUNE_MIN_PRODUCTS = 200_000
PRUNE_MIN_CANDIDATES = 50_000
PRUNE_SAMPLE = 512
# Block-max bounds (ScoreBounds.block_max): products in blocks of BLOCK in catalog order; a term
# gets a row of its largest level in each block when its postings are at least a quarter as
# many as the blocks (shorter ones are bounded by their maximum in every block they touch).
BLOCK = 16
BLOCK_MIN_POSTINGS = 2048  # the block filter runs when the essential postings hold more than this
TIES_BY_ARGPARTITION, TIES_BY_INDEX = "argpartition", "index"  # SearchIndex.ties
# Catalogs of at least this many products take products tied at the 50th score in catalog order
# (TIES_BY_INDEX, as Lucene breaks ties by document id): the pruned search finds them without
# scoring the catalog. Smaller ones keep numpy's whole-catalog choice (TIES_BY_ARGPARTITION), which
# the demo's 1,000-product shop and every figure measured on it were made with; about 17% of its
# queries would fill their last slots differently. The same bound as the pruned search's.
TIES_BY_INDEX_MIN_PRODUCTS = PRUNE_MIN_PRODUCTS

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

    def __init__(self, products: list[Product] | None = None, cache_size: int = 4096, *, bm25=None,
                 bounds: ScoreBounds | None = None, ties: str | None = None):
        if bm25 is None:
            bm25 = _build_bm25(products or [])
        self._bm25 = bm25
        self.num_products = int(bm25.scores["num_docs"])
        self._vocab = bm25.vocab_dict
        self._cache: OrderedDict[str, list[int]] = OrderedDict()
        self._cache_size = cache_size
        s = bm25.scores  # plain views of bm25s's (mapped) arrays: no memmap bookkeeping per slice
        self._data, self._indices, self._indptr = (np.asarray(s[name]) for name in ("data", "indices", "indptr"))
        self._bounds = bounds if bounds is not None else ScoreBounds.build(self._data, self._indptr, self._indices,
                                                                           self.num_products)
        self.path_counts: Counter[str] = Counter()  # uncached searches by path: small, pruned, tie, unproven
        # Which products tied at the k-th score make the cut: TIES_BY_ARGPARTITION (numpy's
        # choice over the whole catalog, so a tie is searched exhaustively) or TIES_BY_INDEX (the
        # first in catalog order, which the pruned search finds too); None: by catalog size.
        self.ties = ties or default_ties(self.num_products)

    def save(self, folder) -> None:
        """Write the index to `folder` with bm25s's `save` (numpy arrays, vocab and params), and its score bounds."""
        self._bm25.save(str(folder), show_progress=False)
        self._bounds.save(Path(folder))

    @classmethod
    def load(cls, folder, cache_size: int = 4096, mmap: bool = True) -> "SearchIndex":
        """The index saved in `folder`; with `mmap` its score arrays stay on disk, mapped read-only."""
        import bm25s

        bm25 = bm25s.BM25.load(str(folder), mmap=mmap, show_progress=False)
        return cls(cache_size=cache_size, bm25=bm25, bounds=ScoreBounds.load(Path(folder), mmap=mmap))

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

    def search_exhaustive(self, query: str, top_k: int = RESULTS_TOTAL) -> list[int]:
        """`search` without the cache and without pruning: every product scored (the reference)."""
        return self._search_uncached(query, top_k, pruned=False)

    def _search_uncached(self, query: str, top_k: int, pruned: bool = True) -> list[int]:
        tokens = [t for t in tokenize(query) if t in self._vocab]
        if not tokens or self.num_products == 0:
            return []
        k = min(top_k, self.num_products)
        if pruned and self.num_products < PRUNE_MIN_PRODUCTS:
            self.path_counts["small"] += 1
            pruned = False
        found = self._pruned_top([self._vocab[t] for t in tokens], k) if pruned else None
        if found is None:
            top, top_scores = self._exhaustive_top(tokens, k)
        else:
            top, top_scores = found
        # Sort by score descending, then by index so equal scores are ordered deterministically.
        order = np.lexsort((top, -top_scores))
        return [int(top[i]) for i in order if top_scores[i] > 0]

    def _exhaustive_top(self, tokens: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """The top k over every product's score (the reference the pruned search must equal)."""
        scores = self.scores(tokens)  # (num_products,)
        top = _top_positive(scores, k)
        if top is None and self.ties == TIES_BY_INDEX:
            top = _cut_by_index(scores, k)
        elif top is None:  # a tie at the k-th score: the whole-catalog selection, as always
            top = np.argpartition(-scores, k - 1)[:k] if k < self.num_products else np.arange(self.num_products)
        return top, scores[top]

    def _pruned_top(self, ids: list[int], k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The exhaustive search's top k and their scores, found by scoring a few candidates;
        None when that cannot be proven (then the caller scores every product).

        MaxScore (Turtle & Flood 1995) with quantized bounds. A floor comes first: the k-th best
        lower bound of the scores of a sample of products that hold many of the query's terms
        (no product below it can be in the top k). Candidates are drawn from the postings of the *essential*
        terms only: every other product lacks them and scores at most the sum of the remaining
        terms' maxima, which stays below the floor. Each candidate's upper bound is summed term
        by term (exact scores for short postings, dense 1-byte levels for long ones), dropping
        those that cannot reach the floor; the survivors are scored exactly, bit for bit as
        `scores()`, the floor rising to the k-th best exact score so far (`_scan`, compiled), and
        `_top_positive(..., floor)` accepts the cut only if it is the catalog's own: unique (no
        tie at the k-th score) and at or above the floor. All bounds are widened by `slack`, more
        than float32 rounding can move a sum of `len(ids)` scores.
        """
        if k >= self.num_products:
            return None
        b = self._bounds
        multiplicity = Counter(ids)
        terms = np.array(sorted(multiplicity), dtype=np.int64)
        counts = np.array([multiplicity[t] for t in terms.tolist()], dtype=np.int64)
        slack = (2 * len(ids) + 8) * 2.0**-22  # float32 rounding of sums of len(ids) scores or bounds, 4x over
        weight = counts * b.term_max[terms].astype(np.float64) * (1 + slack)  # (T,) each term's most
        lengths = b.lengths[terms]
        sample = self._floor_sample(terms, lengths, k)
        floor = _kth_best(self._lower_bounds(sample, terms, counts), k) * (1 - slack)  # a first floor
        essential = _essential_terms(weight, lengths, floor)
        live = self._live_blocks(terms, counts, floor, slack) if lengths[essential].sum() > BLOCK_MIN_POSTINGS else None
        cand = self._candidates(terms[essential], live)
        if len(cand) > max(PRUNE_MIN_CANDIDATES, self.num_products // 4) or (floor == 0.0 and not essential.all()):
            self.path_counts["unproven"] += 1
            return None
        docs, exact, tau = self._scan(cand, ids, terms, counts, weight, floor, slack, k)  # exact: as scores() gives
        top = _top_positive(exact, k, floor=tau)
        tie = top is None and _kth_ties(exact, k)
        if tie and self.ties == TIES_BY_INDEX and _kth_best(exact, k) >= tau:  # every tied product is here
            top = _cut_by_index(exact, k)
        elif top is None:
            self.path_counts["tie" if tie else "unproven"] += 1
            return None
        self.path_counts["pruned"] += 1
        return docs[top], exact[top]

    def _floor_sample(self, terms: np.ndarray, lengths: np.ndarray, k: int) -> np.ndarray:
        """Products likely to score high, ascending: from each of the two shortest postings of k or
        more (of different lengths: two names of one thing share their postings), a sample narrowed
        to those in the next shortest postings, term after term, while k or more remain."""
        by_length = terms[np.argsort(lengths, kind="stable")].tolist()
        order = [t for t in by_length if self._bounds.lengths[t] >= k]
        seeds = order[:1] + [t for t in order if self._bounds.lengths[t] != self._bounds.lengths[order[0]]][:1]
        samples = [self._narrowed(seed, [t for t in by_length if t != seed], k) for seed in seeds]
        if not samples:
            return np.zeros(0, dtype=self._indices.dtype)
        return _union(samples)

    def _narrowed(self, seed: int, others: list[int], k: int) -> np.ndarray:
        """A sample of the seed term's postings, kept to those in each other term's postings in turn
        while k or more remain; at most PRUNE_SAMPLE products."""
        from webgrove.envs.shop.scan import narrow  # compiled (numba): big catalogs only

        postings = self._indices[int(self._indptr[seed]):int(self._indptr[seed + 1])]
        sample = postings[:: max(1, len(postings) // (4 * PRUNE_SAMPLE))]
        others_ = np.asarray(others, dtype=np.int64)
        sample = narrow(np.ascontiguousarray(sample), self._indices, self._indptr, self._bounds.dense,
                        self._bounds.dense_row[others_].astype(np.int64), others_, k)
        return sample[:: max(1, len(sample) // PRUNE_SAMPLE)]

    def _candidates(self, terms: np.ndarray, live: np.ndarray | None) -> np.ndarray:
        """The products in the postings of these terms and in `live` blocks (None: all), ascending."""
        from webgrove.envs.shop.scan import union  # compiled (numba): big catalogs only

        every = np.zeros(0, dtype=bool)
        return union(self._indices, self._indptr, terms.astype(np.int64), every if live is None else live, BLOCK)

    def _live_blocks(self, terms: np.ndarray, counts: np.ndarray, tau: float, slack: float) -> np.ndarray | None:
        """(B,) bool: the blocks that may hold a score of `tau` (None: every block). A block's bound
        is the sum, over the query's terms, of the term's largest level in the block (block-max
        bounds, Ding & Suel 2011), integers in units of `block_step`; a term without a row counts
        its maximum in every block its postings touch."""
        b = self._bounds
        if tau <= 0.0:
            return None
        levels = np.zeros(b.block_max.shape[1], dtype=np.int32)  # (B,)
        for term, count in zip(terms.tolist(), counts.tolist()):
            row = int(b.block_row[term])
            if row >= 0:
                np.add(levels, b.block_max[row] if count == 1 else b.block_max[row] * np.int32(count), out=levels)
            else:  # a fancy-indexed += adds once to a block named by several postings
                postings = self._indices[int(self._indptr[term]):int(self._indptr[term + 1])]
                levels[postings // BLOCK] += count * _level(float(b.term_max[term]), b.block_step)
        return levels * (b.block_step * (1 + slack)) >= tau

    def _lower_bounds(self, docs: np.ndarray, terms: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """(D,) float64 lower bounds of these products' scores: exact for short postings, the
        dense level less one step for long ones."""
        b = self._bounds
        low = np.zeros(len(docs))
        for term, count in zip(terms.tolist(), counts.tolist()):
            row = int(b.dense_row[term])
            if row >= 0:
                low += np.maximum(b.dense[row][docs].astype(np.float64) - 1, 0) * (count * b.step)
            else:
                low += self._term_scores(term, docs) * float(count)
        return low

    def _scan(self, cand: np.ndarray, ids: list[int], terms: np.ndarray, counts: np.ndarray, weight: np.ndarray,
              tau: float, slack: float, k: int) -> tuple[np.ndarray, np.ndarray, float]:
        """The candidates that may reach the floor `tau`, their exact float32 scores, and the
        floor, raised as exact scores come (`webgrove.envs.shop.scan.scan`, compiled). Short
        terms are summed first, highest maximum first, then the long terms (dense levels), so a
        candidate is dropped after as few terms as possible."""
        from webgrove.envs.shop.scan import scan  # numba: imported by big catalogs only

        b = self._bounds
        rows = b.dense_row[terms].astype(np.int64)
        order = np.argsort(-weight, kind="stable")
        seq = np.concatenate([order[rows[order] < 0], order[rows[order] >= 0]])
        position = {int(t): j for j, t in enumerate(terms[seq].tolist())}
        at = np.array([position[t] for t in ids], dtype=np.int64)  # each token's term, in query order
        return scan(cand, self._data, self._indices, self._indptr, b.dense, rows[seq], terms[seq],
                    counts[seq].astype(np.float64), weight[seq], float(b.step), at, float(tau), float(slack), k)

    def _term_scores(self, term: int, docs: np.ndarray) -> np.ndarray:
        """The term's float32 scores at each of `docs` (ascending; 0 where absent), by binary search."""
        start, end = int(self._indptr[term]), int(self._indptr[term + 1])
        if end == start:
            return np.zeros(len(docs), dtype=self._data.dtype)
        postings = self._indices[start:end]
        at = np.searchsorted(postings, docs)
        np.minimum(at, end - start - 1, out=at)
        value = self._data[start:end][at]
        value[postings[at] != docs] = 0
        return value

    def scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 scores of every product for these (in-vocabulary) tokens: bm25s's `get_scores`, bit for bit.

        bm25s adds each token's postings with `np.add.at`; a token's postings name each
        document once, so a fancy-indexed `+=` performs the same float additions in the
        same order, several times faster.
        """
        data, indices, indptr = self._data, self._indices, self._indptr
        scores = np.zeros(self.num_products, dtype=np.dtype(self._bm25.dtype))
        for token_id in (self._vocab[t] for t in tokens):
            start, end = int(indptr[token_id]), int(indptr[token_id + 1])
            scores[indices[start:end]] += data[start:end]
        return scores


def default_ties(num_products: int) -> str:
    """The tie rule of a catalog of this size (see TIES_BY_INDEX_MIN_PRODUCTS)."""
    return TIES_BY_INDEX if num_products >= TIES_BY_INDEX_MIN_PRODUCTS else TIES_BY_ARGPARTITION


def _top_positive(scores: np.ndarray, k: int, floor: float = 0.0) -> np.ndarray | None:
    """The k best of the positive scores, when that set is unique; None when the k-th best
    score ties with the next (then which tied products make the cut is argpartition's choice
    over the whole catalog, and the caller makes it exactly as before).

    Only products with a positive score are returned, so selecting among them gives the
    same products as selecting over the whole catalog whenever the cut is unique.

    `floor` > 0: `scores` are a subset of the catalog and every product left out scores
    below `floor`; the answer is then the catalog's own only if the k-th best reaches `floor`
    (else None, as for a tie).
    """
    positive = np.flatnonzero(scores > 0)
    if len(positive) <= k:
        if floor <= 0:
            return positive
        return positive if len(positive) == k and scores[positive].min() >= floor else None
    neg = -scores[positive]
    part = np.argpartition(neg, k)  # part[:k]: the k best; part[k]: the next one
    worst = neg[part[:k]].max()
    if neg[part[k]] <= worst or -worst < floor:
        return None
    return positive[part[:k]]


def _essential_terms(weight: np.ndarray, lengths: np.ndarray, tau: float) -> np.ndarray:
    """Which query terms must supply candidates: the others, longest postings first, are left out
    while the sum of their maxima (`weight`, already widened for rounding) stays below `tau`."""
    essential = np.ones(len(weight), dtype=bool)
    budget = 0.0
    for j in np.argsort(-lengths, kind="stable"):
        if budget + weight[j] < tau:
            budget += weight[j]
            essential[j] = False
    return essential


def _level_step(term_max: np.ndarray, dense_row: np.ndarray) -> float:
    """The score one level of the dense rows stands for: the largest long term's maximum / 255."""
    rows = np.asarray(dense_row) >= 0
    return float(np.asarray(term_max)[rows].max()) / 255 if rows.any() else 1.0


def _level(score: float, step: float) -> int:
    """The level of a score: min(255, 1 + floor(score / step)); a score is at most level * step."""
    return min(255, int(math.floor(score / step)) + 1)


def _block_levels(data, indptr: np.ndarray, indices, num_products: int, step: float) -> tuple[np.ndarray, np.ndarray]:
    """ScoreBounds.block_row and .block_max (see there)."""
    lengths = np.diff(indptr)
    num_blocks = -(-num_products // BLOCK)
    with_row = np.flatnonzero((lengths > 0) & (lengths * 4 >= num_blocks))
    block_row = np.full(len(lengths), -1, dtype=np.int32)
    block_row[with_row] = np.arange(len(with_row), dtype=np.int32)
    block_max = np.zeros((len(with_row), num_blocks), dtype=np.uint8)
    for row, term in enumerate(with_row.tolist()):
        start, end = int(indptr[term]), int(indptr[term + 1])
        blocks = np.asarray(indices[start:end]) // BLOCK  # non-decreasing: postings are in catalog order
        level = np.minimum(np.floor(np.asarray(data[start:end], dtype=np.float64) / step) + 1, 255).astype(np.uint8)
        first = np.flatnonzero(np.concatenate(([True], blocks[1:] != blocks[:-1])))
        block_max[row, blocks[first]] = np.maximum.reduceat(level, first)
    return block_row, block_max


def _block_step(term_max: np.ndarray) -> float:
    """One level of the block-max rows: the largest maximum of any term / 255."""
    return float(np.max(term_max)) / 255 if len(term_max) and float(np.max(term_max)) > 0 else 1.0


def _kth_best(scores: np.ndarray, k: int) -> float:
    """The k-th best of these scores; 0.0 when there are fewer than k."""
    if len(scores) < k:
        return 0.0
    return float(np.partition(scores, len(scores) - k)[len(scores) - k])


def _union(parts: list[np.ndarray]) -> np.ndarray:
    """The distinct values of these ascending arrays, ascending."""
    if len(parts) == 1:
        return parts[0]
    merged = np.sort(np.concatenate(parts))  # (sorting beats np.unique's hashing several times over)
    return merged[np.concatenate(([True], merged[1:] != merged[:-1]))]


def _cut_by_index(scores: np.ndarray, k: int) -> np.ndarray:
    """The k best of more than k positive scores, products tied at the k-th score taken in index order."""
    kth = _kth_best(scores, k)
    above = np.flatnonzero(scores > kth)
    return np.concatenate((above, np.flatnonzero(scores == kth)[: k - len(above)]))


def _kth_ties(scores: np.ndarray, k: int) -> bool:
    """Whether the k-th best score equals the next one."""
    if len(scores) <= k:
        return False
    part = np.partition(-scores, [k - 1, k])
    return bool(part[k - 1] == part[k])


class ScoreBounds:
    """What the pruned search knows of each term's scores without reading its postings.

    Arrays (saved next to bm25s's files as `bounds.<name>.npy`, memory-mapped on load):
        term_max   float32 (V,)  the largest score in each term's postings (0 when empty)
        lengths    int64 (V,)    each term's number of postings
        dense_row  int32 (V,)    the row of `dense` for terms in at least DENSE_MIN_FRACTION of
                                 the products, else -1
        dense      uint8 (R, N)  per long term and product: 0 when absent, else
                                 min(255, 1 + floor(score / step)), so the score is below
                                 level * step; one `step` for all rows: the largest maximum of
                                 a long term / 255 (so row levels add up as integers would)
        block_row  int32 (V,)    the row of `block_max` for terms with at least B / 4 postings, else -1
        block_max  uint8 (Rb, B) per such term and block of BLOCK products (B blocks): 0 when the
                                 term is absent from the block, else the largest level of its
                                 scores there, in units of `block_step` (the largest maximum of
                                 any term / 255): every score there is at most level * block_step
    """

    NAMES = ("term_max", "lengths", "dense_row", "dense", "block_row", "block_max")

    def __init__(self, term_max, lengths, dense_row, dense, block_row, block_max):
        self.term_max, self.lengths, self.dense_row, self.dense = term_max, lengths, dense_row, dense
        self.block_row, self.block_max = block_row, block_max
        self.step = _level_step(term_max, dense_row)
        self.block_step = _block_step(term_max)

    @classmethod
    def build(cls, data, indptr, indices, num_products: int) -> "ScoreBounds":
        indptr = np.asarray(indptr, dtype=np.int64)
        lengths = np.diff(indptr)
        term_max = np.zeros(len(lengths), dtype=np.float32)
        nonempty = np.flatnonzero(lengths)
        if len(nonempty):
            term_max[nonempty] = np.maximum.reduceat(np.asarray(data), indptr[nonempty])
        long_terms = np.flatnonzero((lengths > 0) & (lengths >= DENSE_MIN_FRACTION * num_products))
        dense_row = np.full(len(lengths), -1, dtype=np.int32)
        dense_row[long_terms] = np.arange(len(long_terms), dtype=np.int32)
        dense = np.zeros((len(long_terms), num_products), dtype=np.uint8)
        step = _level_step(term_max, dense_row)
        for row, term in enumerate(long_terms.tolist()):
            start, end = int(indptr[term]), int(indptr[term + 1])
            level = np.floor(np.asarray(data[start:end], dtype=np.float64) / step) + 1
            dense[row, np.asarray(indices[start:end])] = np.minimum(level, 255).astype(np.uint8)
        return cls(term_max, lengths, dense_row, dense,
                   *_block_levels(data, indptr, indices, num_products, _block_step(term_max)))

    def save(self, folder: Path) -> None:
        for name in self.NAMES:
            np.save(folder / f"bounds.{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> "ScoreBounds":
        return cls(*(np.asarray(np.load(folder / f"bounds.{name}.npy", mmap_mode="r" if mmap else None))
                     for name in cls.NAMES))


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
    if len(corpus.ids) and len(corpus.vocab):  # bm25s's own loops for an empty corpus (nothing to gain)
        # `index` keeps its bookkeeping (vocab, the empty token); the arrays come from `_lucene_arrays`
        bm25.build_index_from_ids = lambda unique_token_ids, corpus_token_ids, **_: _lucene_arrays(
            corpus, len(unique_token_ids), bm25.k1, bm25.b)
        bm25.nonoccurrence_array = None  # what bm25s's build_index_from_ids sets for Lucene
    bm25.index(corpus, show_progress=False)
    bm25.__dict__.pop("build_index_from_ids", None)
    return bm25


def _lucene_arrays(corpus: TokenIds, num_terms: int, k1: float, b: float) -> dict:
    """bm25s's Lucene score matrix of these documents (`BM25.build_index_from_ids`), bit for bit,
    computed with whole-array numpy operations instead of a Python loop per document.

    bm25s computes, per document d of length l_d and term t occurring tf times in it,
    float32(float64(idf32[t]) * (tf / (k1 * ((1 - b) + b * l_d / l_avg) + tf))) in float64 (its
    float64 scalar promotes the float32 arrays), idf32[t] = float32(log(1 + (N - df + 0.5) / (df + 0.5)))
    with Python's `math.log`; the CSC layout sorts the (term, document) pairs. The same IEEE
    operations in the same order on arrays round the same, so the arrays are equal byte for byte
    (pinned by tests/envs/test_shop_search.py).
    """
    flat, offsets = corpus._flat, corpus._offsets
    num_docs = len(offsets) - 1
    lengths = np.diff(offsets)  # (N,) int64, as bm25s's np.array([len(doc) ...])
    l_avg = lengths.mean()
    # Postings: sort the token occurrences by term (stable: documents stay ascending), then
    # collapse the repeats of a (term, document) pair into its term frequency.
    order = np.argsort(flat.astype(np.int16) if num_terms < 2**15 else flat, kind="stable")  # radix sort for int16
    terms = flat[order]
    docs = np.repeat(np.arange(num_docs, dtype=np.int32), lengths)[order]  # (T,) each occurrence's document
    del order
    first = np.ones(len(terms), dtype=bool)
    np.not_equal(terms[1:], terms[:-1], out=first[1:])
    first[1:] |= docs[1:] != docs[:-1]
    starts = np.flatnonzero(first)
    del first
    tf = np.diff(np.append(starts, len(terms))).astype(np.float64)  # (P,)
    terms, docs = terms[starts], docs[starts]
    df = np.bincount(terms, minlength=num_terms)
    indptr = np.zeros(num_terms + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    idf = np.zeros(num_terms, dtype=np.float32)
    for term, count in enumerate(df.tolist()):
        if count:
            idf[term] = math.log(1 + (num_docs - count + 0.5) / (count + 0.5))
    norm = k1 * ((1 - b) + b * lengths.astype(np.float64) / l_avg)  # (N,) float64
    data = (idf[terms].astype(np.float64) * (tf / (norm[docs] + tf))).astype(np.float32)
    return {"data": data, "indices": docs, "indptr": indptr, "num_docs": num_docs}


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
