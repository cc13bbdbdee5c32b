"""The pruned product search: the exhaustive search's results, from a few candidates."""
import random

import numpy as np
import pytest

from webgrove.envs.shop import search as search_module
from webgrove.envs.shop.search import ScoreBounds, SearchIndex, _top_positive, tokenize
from webgrove.envs.shop.store import CatalogStoreError, open_store, write_store
from webgrove.envs.shop.synthetic import generate_catalog

N = 3000  # products: long postings and short ones, ties at the 50th score, built in a second


@pytest.fixture(autouse=True)
def prune_small_catalogs(monkeypatch):
    """These tests check the pruned path on small catalogs, which search scores exhaustively."""
    monkeypatch.setattr(search_module, "PRUNE_MIN_PRODUCTS", 0)


@pytest.fixture(scope="module")
def catalog():
    return generate_catalog(N, seed=5)


@pytest.fixture(scope="module")
def index(catalog):
    return SearchIndex(catalog.products)


def _queries(catalog, index, n: int, seed: int = 0) -> list[str]:
    """Instructions, and random bags of vocabulary words with unknown and repeated words."""
    rng = random.Random(seed)
    words = sorted(index._vocab)
    queries = [g.instruction for g in catalog.goals[:n]]
    for _ in range(n):
        bag = rng.sample(words, rng.randint(1, 12))
        bag += rng.sample(bag, rng.randint(0, min(3, len(bag))))  # repeated terms add their scores again
        if rng.random() < 0.3:
            bag.append("zzqx")  # a word no product has
        rng.shuffle(bag)
        queries.append(" ".join(bag))
    return queries + words[:100] + ["", "zzqx", "zzqx qqzz", "the and of"]


def test_pruned_search_is_the_exhaustive_search(catalog, index):
    index.path_counts.clear()
    queries = _queries(catalog, index, 400)
    for q in queries:
        assert index._search_uncached(q, 50) == index.search_exhaustive(q), q
    for top_k in (1, 10):  # other cuts than WebShop's 50
        for q in queries[:100]:
            assert index._search_uncached(q, top_k) == index.search_exhaustive(q, top_k), (q, top_k)
    # The pruned path did the work (this fails if it always fell back) and ties were met too.
    assert index.path_counts["pruned"] >= 0.75 * len(queries)
    assert index.path_counts["tie"] > 0


def test_exhaustive_search_is_bm25s_with_argpartition(catalog, index):
    """The reference itself: bm25s's scores, the whole catalog argpartitioned, ties by index."""
    for q in [g.instruction for g in catalog.goals[:200]]:
        tokens = [t for t in tokenize(q) if t in index._vocab]
        scores = index._bm25.get_scores(tokens)
        top = np.argpartition(-scores, 49)[:50]
        ranked = top[np.lexsort((top, -scores[top]))]
        assert index.search_exhaustive(q) == [int(i) for i in ranked if scores[i] > 0], q


def test_ties_at_the_cut_fall_back_to_the_whole_catalog():
    # Copies of one product score alike: 60 copies tie across the 50th place.
    base = generate_catalog(200, seed=1)
    products = base.products + [base.products[7]] * 60
    index = SearchIndex(products)
    query = base.products[7].title
    assert index._search_uncached(query, 50) == index.search_exhaustive(query)
    assert index.path_counts["tie"] == 1 and index.path_counts["pruned"] == 0


def test_bounds_hold_every_score(index):
    b = index._bounds
    data, indices, indptr = index._data, index._indices, index._indptr
    assert (b.dense_row >= 0).any() and (b.dense_row < 0).any()  # both kinds of terms exist at this size
    for term in range(len(indptr) - 1):
        values = data[indptr[term]:indptr[term + 1]]
        assert b.lengths[term] == len(values)
        assert b.term_max[term] == (values.max() if len(values) else 0)
        if b.dense_row[term] >= 0:
            level = np.asarray(b.dense[b.dense_row[term]], dtype=np.float64)
            docs = indices[indptr[term]:indptr[term + 1]]
            assert (level[docs] >= 1).all() and (values <= level[docs] * b.step).all()
            assert np.count_nonzero(level) == len(docs)


def test_top_positive_with_a_floor():
    scores = np.array([5.0, 4.0, 3.0, 2.0, 0.0], dtype=np.float32)
    assert sorted(_top_positive(scores, 2, floor=3.5)) == [0, 1]
    assert _top_positive(scores, 3, floor=3.5) is None  # the 3rd best is below what others may score
    assert sorted(_top_positive(scores[:2], 2, floor=4.0)) == [0, 1]
    assert _top_positive(scores[:1], 2, floor=1.0) is None  # too few: others may be in the top 2
    assert sorted(_top_positive(scores, 9)) == [0, 1, 2, 3]  # floor 0: as before
    assert _top_positive(np.array([2, 1, 1], dtype=np.float32), 2) is None  # a tie at the cut


def test_store_round_trip_maps_the_bounds(tmp_path, catalog, index):
    folder = tmp_path / "store"
    folder.mkdir()
    write_store(catalog, folder, {"test": 1}, index=index)
    _, mapped = open_store(folder)
    for name in ScoreBounds.NAMES:
        assert (folder / "index" / f"bounds.{name}.npy").is_file()
        np.testing.assert_array_equal(getattr(mapped._bounds, name), getattr(index._bounds, name))
    assert isinstance(mapped._bounds.dense.base, np.memmap) or isinstance(mapped._bounds.dense, np.memmap)
    for q in _queries(catalog, index, 100, seed=1):
        assert mapped.search(q) == index.search(q), q
    assert mapped.path_counts["pruned"] > 0


@pytest.mark.parametrize("name", ScoreBounds.NAMES)
def test_corrupt_bounds_file_is_named(tmp_path, catalog, index, name):
    folder = tmp_path / "store"
    folder.mkdir()
    write_store(catalog, folder, {"test": 1}, index=index)
    path = folder / "index" / f"bounds.{name}.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CatalogStoreError, match=rf"bounds\.{name}\.npy: CRC-32 mismatch"):
        open_store(folder)


def test_no_dense_rows_still_prunes(monkeypatch, catalog):
    # Every term below the dense threshold: bounds come from the postings alone.
    monkeypatch.setattr(search_module, "DENSE_MIN_FRACTION", 2.0)
    index = SearchIndex(catalog.products[:1500])
    assert (index._bounds.dense_row < 0).all() and index._bounds.dense.shape == (0, 1500)
    for q in [g.instruction for g in catalog.goals[:150]]:
        assert index._search_uncached(q, 50) == index.search_exhaustive(q), q
    assert index.path_counts["pruned"] > 100


def test_ties_by_index_are_pruned_and_differ_only_among_the_tied(catalog):
    index = SearchIndex(catalog.products)
    index.ties = search_module.TIES_BY_INDEX
    queries = _queries(catalog, index, 300, seed=2)
    differ = 0
    for q in queries:
        ranked = index._search_uncached(q, 50)
        assert ranked == index.search_exhaustive(q), q  # the same rule on both paths
        index.ties = search_module.TIES_BY_ARGPARTITION
        old = index.search_exhaustive(q)
        index.ties = search_module.TIES_BY_INDEX
        if ranked != old:  # only which of the products tied at the 50th score made the cut
            differ += 1
            tokens = [t for t in tokenize(q) if t in index._vocab]
            scores = index.scores(tokens)
            assert len(ranked) == len(old) and np.array_equal(scores[ranked], scores[old]), q
            cut = scores[ranked[-1]]
            assert [i for i in ranked if scores[i] > cut] == [i for i in old if scores[i] > cut]
            tied = np.flatnonzero(scores == cut)
            assert [i for i in ranked if scores[i] == cut] == tied[: sum(scores[ranked] == cut)].tolist()
    assert differ > 0 and index.path_counts["tie"] == 0


def test_block_max_bounds_hold_every_score(index):
    b, data, indices, indptr = index._bounds, index._data, index._indices, index._indptr
    num_blocks = -(-index.num_products // search_module.BLOCK)
    assert b.block_max.shape[1] == num_blocks and (b.block_row >= 0).any() and (b.block_row < 0).any()
    for term in np.flatnonzero(b.block_row >= 0).tolist():
        values, docs = data[indptr[term]:indptr[term + 1]], indices[indptr[term]:indptr[term + 1]]
        level = np.asarray(b.block_max[b.block_row[term]], dtype=np.float64)
        blocks = docs // search_module.BLOCK
        assert (values <= level[blocks] * b.block_step).all()
        assert set(np.flatnonzero(level).tolist()) == set(blocks.tolist())  # 0 exactly where absent
        assert ((level[blocks] - 1) * b.block_step <= values.max()).all()  # no level more than one too high


@pytest.mark.parametrize("block", [1, 4, 64])
@pytest.mark.parametrize("ties", [search_module.TIES_BY_ARGPARTITION, search_module.TIES_BY_INDEX])
def test_block_filtered_candidates_keep_the_exhaustive_results(monkeypatch, catalog, block, ties):
    # Blocks of 1 product (exact per-product maxima), 4 and 64; the filter on every query.
    monkeypatch.setattr(search_module, "BLOCK", block)
    monkeypatch.setattr(search_module, "BLOCK_MIN_POSTINGS", 0)
    index = SearchIndex(catalog.products)
    index.ties = ties
    filtered = []
    live_blocks = index._live_blocks
    monkeypatch.setattr(index, "_live_blocks", lambda *a: filtered.append(live := live_blocks(*a)) or live)
    for q in _queries(catalog, index, 150, seed=3):
        assert index._search_uncached(q, 50) == index.search_exhaustive(q), q
    assert sum(live is not None and not live.all() for live in filtered) > 100  # blocks were dropped
    assert index.path_counts["pruned"] > 150


def test_small_catalogs_are_scored_exhaustively_with_the_same_results(monkeypatch, catalog, index):
    monkeypatch.setattr(search_module, "PRUNE_MIN_PRODUCTS", N + 1)  # below it: every product scored
    queries = [q for q in _queries(catalog, index, 200)
               if any(t in index._vocab for t in search_module.tokenize(q))]  # (others return at once)
    index.path_counts.clear()
    small = [index._search_uncached(q, 50) for q in queries]
    assert index.path_counts["small"] == len(queries) and index.path_counts["pruned"] == 0
    monkeypatch.setattr(search_module, "PRUNE_MIN_PRODUCTS", N)  # at it: pruned (exact, so the same)
    assert [index._search_uncached(q, 50) for q in queries] == small and index.path_counts["pruned"] > 0


def test_tie_rule_follows_catalog_size_unless_given(monkeypatch, catalog):
    assert SearchIndex(catalog.products[:100]).ties == search_module.TIES_BY_ARGPARTITION
    assert SearchIndex(catalog.products[:100], ties=search_module.TIES_BY_INDEX).ties == search_module.TIES_BY_INDEX
    monkeypatch.setattr(search_module, "TIES_BY_INDEX_MIN_PRODUCTS", N)
    big, smaller = SearchIndex(catalog.products), SearchIndex(catalog.products[: N - 1])
    assert (big.ties, smaller.ties) == (search_module.TIES_BY_INDEX, search_module.TIES_BY_ARGPARTITION)
    for q in _queries(catalog, big, 200, seed=4):  # a big catalog never falls back on a tie
        big._search_uncached(q, 50)
    assert big.path_counts["tie"] == 0 and big.path_counts["pruned"] > 150
