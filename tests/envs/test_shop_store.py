"""The catalog store: one memory-mapped catalog and index per machine, identical behaviour."""
import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from webgrove.agents.base import context_from
from webgrove.agents.scripted import OraclePolicy, RandomPolicy
from webgrove.envs.make import EnvArgs
from webgrove.envs.shop import store
from webgrove.envs.shop.engine import get_engine, synthetic_engine
from webgrove.envs.shop.env import ShopEnv
from webgrove.envs.shop.search import SearchIndex, _top_positive, product_document, tokenize
from webgrove.envs.shop.store import CatalogStoreError, StoredCatalog, open_or_build, open_store, write_store
from webgrove.envs.shop.synthetic import generate_catalog
from webgrove.envs.shop.webshop_data import load_webshop

N = 1200  # products: small enough to build in a fraction of a second, big enough for paging
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "webshop"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("catalogs")


def _written(catalog, folder: Path) -> StoredCatalog:
    folder.mkdir()
    write_store(catalog, folder, {"test": folder.name})
    return open_store(folder)[0]


def _same_catalog(stored: StoredCatalog, catalog) -> None:
    # repr as well as ==: a float read back as an int (or a list as a tuple) would pass ==
    assert repr(list(stored.products)) == repr(catalog.products)
    assert repr(list(stored.goals)) == repr(catalog.goals)
    assert {k: list(v) for k, v in stored.splits.items()} == catalog.splits
    for split in catalog.splits:
        assert repr(list(stored.split_goals(split))) == repr(catalog.split_goals(split))
    assert stored.name == catalog.name


def test_synthetic_catalog_round_trips_exactly(tmp_path):
    catalog = generate_catalog(N, seed=3)
    stored = _written(catalog, tmp_path / "s")
    _same_catalog(stored, catalog)
    p = catalog.products[17]
    assert stored.product(p.asin.lower()) == p and stored.has_product(p.asin)
    assert not stored.has_product("B0NOTHERE0") and not stored.has_product("") and not stored.has_product("x" * 40)
    with pytest.raises(KeyError, match="no product with asin"):
        stored.product("B0NOTHERE0")
    with pytest.raises(ValueError, match="unknown split"):
        stored.split_goals("dev")
    assert stored.products[-1] == catalog.products[-1] and stored.goals[2:4] == catalog.goals[2:4]


@pytest.mark.parametrize("goals", ["synthetic", "human"])
def test_webshop_catalog_round_trips_exactly(tmp_path, goals):
    # Real-data records: title_nouns None, reviews, price ranges, human goals' option lists.
    catalog = load_webshop(FIXTURE, goals=goals)
    _same_catalog(_written(catalog, tmp_path / goals), catalog)


def test_mapped_index_ranks_exactly_as_the_built_one(tmp_path):
    catalog = generate_catalog(N)
    built = SearchIndex(catalog.products)
    built.save(tmp_path / "index")
    mapped = SearchIndex.load(tmp_path / "index")
    assert isinstance(mapped._bm25.scores["data"], np.memmap)
    queries = [g.instruction for g in catalog.goals[:400]] + ["", "zzz unknown words", "shampoo"]
    for q in queries:
        assert mapped.search(q) == built.search(q), q


def _reference_search(index: SearchIndex, query: str, top_k: int = 50) -> list[int]:
    """The search as it was written before the store: bm25s's get_scores, argpartition over all."""
    tokens = [t for t in tokenize(query) if t in index._vocab]
    if not tokens:
        return []
    scores = index._bm25.get_scores(tokens)
    top = np.argpartition(-scores, top_k - 1)[:top_k]
    ranked = top[np.lexsort((top, -scores[top]))]
    return [int(i) for i in ranked if scores[i] > 0]


def test_index_from_token_ids_scores_as_bm25s_from_token_strings():
    import bm25s

    catalog = generate_catalog(N)
    ours = SearchIndex(catalog.products)
    theirs = bm25s.BM25(method="lucene")
    theirs.index([tokenize(product_document(p)) for p in catalog.products], show_progress=False)
    assert set(ours._vocab) | {""} == set(theirs.vocab_dict)
    for q in [g.instruction for g in catalog.goals[:300]]:
        tokens = [t for t in tokenize(q) if t in ours._vocab]
        assert ours.scores(tokens).tobytes() == theirs.get_scores(tokens).tobytes(), q


def test_vectorised_index_is_bm25s_own_build_byte_for_byte():
    import bm25s

    from webgrove.envs.shop.search import TokenIds, build_bm25

    products = generate_catalog(N, seed=3).products
    ours = build_bm25(TokenIds(products))
    theirs = bm25s.BM25(method="lucene")
    theirs.index(TokenIds(products), show_progress=False)  # bm25s's own per-document loops
    for name in ("data", "indices", "indptr"):
        assert ours.scores[name].dtype == theirs.scores[name].dtype, name
        assert ours.scores[name].tobytes() == theirs.scores[name].tobytes(), name
    assert ours.scores["num_docs"] == theirs.scores["num_docs"]
    assert list(ours.vocab_dict.items()) == list(theirs.vocab_dict.items())
    assert "build_index_from_ids" not in vars(ours) and ours.nonoccurrence_array is None


# sha256 over the files of the store of generate_catalog(2000): records, splits, asins and bm25s's
# index (the manifest aside: it names the code version; and the pruned search's bounds.* files,
# which change with its bounds, not with the catalog). The build's speed-ups (vectorised generator
# draws, index arrays) must not move a byte; see test_store_files_are_pinned.
STORE_2000_SHA256 = "4b7926d51d063352813178a3a3458638b745698dbb75029a6494e067376ebd4c"


def test_store_files_are_pinned(tmp_path):
    import hashlib

    folder = tmp_path / "store"
    folder.mkdir()
    store.build_store(lambda: generate_catalog(2000), folder, {"source": "synthetic", "num_products": 2000, "seed": 0})
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != store.MANIFEST and not path.name.startswith("bounds."):
            h.update(str(path.relative_to(folder)).encode())
            h.update(path.read_bytes())
    assert h.hexdigest() == STORE_2000_SHA256


def _store_bytes(folder: Path) -> dict:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*"))
            if f.is_file() and f.name != store.MANIFEST}


def test_records_written_by_the_forked_child_or_in_process_are_the_same(tmp_path):
    import threading

    identity = {"source": "synthetic", "num_products": 500, "seed": 0}
    (tmp_path / "forked").mkdir()
    timings: dict = {}
    alone = threading.active_count() == 1  # (threads left by other tests: no child)
    store.build_store(lambda: generate_catalog(500), tmp_path / "forked", identity, timings)
    assert ("write_records_wait_s" in timings) == alone  # the child wrote them
    (tmp_path / "in-process").mkdir()
    release = threading.Event()
    other = threading.Thread(target=release.wait)  # another thread: forking is not safe, no child
    other.start()
    try:
        timings = {}
        store.build_store(lambda: generate_catalog(500), tmp_path / "in-process", identity, timings)
    finally:
        release.set()
        other.join()
    assert "write_records_wait_s" not in timings and timings["write_records_cpu_s"] >= 0
    assert _store_bytes(tmp_path / "forked") == _store_bytes(tmp_path / "in-process")


def test_failed_record_writer_fails_the_build(tmp_path, monkeypatch):
    import threading

    def broken(catalog, folder):
        raise OSError("disk full")

    monkeypatch.setattr(store, "_write_catalog", broken)  # the forked child inherits it
    (tmp_path / "s").mkdir()
    forked = threading.active_count() == 1  # else written in process: the error itself
    with pytest.raises(RuntimeError if forked else OSError, match="records failed" if forked else "disk full"):
        store.build_store(lambda: generate_catalog(200), tmp_path / "s", {"source": "synthetic"})
    assert not (tmp_path / "s" / store.MANIFEST).exists()


def test_search_fast_path_is_the_reference_search(monkeypatch):
    from webgrove.envs.shop import search as search_module

    monkeypatch.setattr(search_module, "PRUNE_MIN_PRODUCTS", 0)  # the pruned path too, on a small catalog
    catalog = generate_catalog(N)
    index = SearchIndex(catalog.products)
    words = sorted(index._vocab, key=index._vocab.get)
    queries = [g.instruction for g in catalog.goals[:300]] + words[:300]
    ties = 0
    for q in queries:
        tokens = [t for t in tokenize(q) if t in index._vocab]
        if tokens:
            assert index.scores(tokens).tobytes() == index._bm25.get_scores(tokens).tobytes()
            ties += _top_positive(index.scores(tokens), 50) is None
        assert index._search_uncached(q, 50) == _reference_search(index, q), q
    assert ties > 0  # the tie fallback ran too


def _episodes(env: ShopEnv, act, episodes: int, seed: int) -> list:
    """Every observation, reward, info of `episodes` episodes (at most 15 steps each)."""
    trace = []
    for i in range(episodes):
        obs, info = env.reset(seed=seed + i)
        history: list[str] = []
        trace.append((obs, info))
        for _ in range(15):
            action = act(context_from(obs, info, history))
            obs, reward, term, trunc, info = env.step(action)
            history.append(action)
            trace.append((action, obs, reward, term, trunc, info))
            if term:
                break
    return trace


@pytest.mark.parametrize("mode", ["text", "html"])
def test_env_identical_with_and_without_the_store(root, mode):
    plain = ShopEnv(split="test", observation_mode=mode, num_products=N, catalog_cache="off")
    mapped = ShopEnv(split="test", observation_mode=mode, num_products=N, catalog_cache=str(root))
    assert isinstance(mapped.catalog, StoredCatalog) and not isinstance(plain.catalog, StoredCatalog)
    for env_a, env_b, policy in [(plain, mapped, "oracle"), (plain, mapped, "random")]:
        traces = []
        for env in (env_a, env_b):
            rng = np.random.default_rng(7)
            act = OraclePolicy(env).act if policy == "oracle" else (lambda c, p=RandomPolicy(): p.act(c, rng))
            traces.append(_episodes(env, act, episodes=25, seed=100))
        steps = sum(len(t) == 6 for t in traces[0])
        assert steps >= 200 if policy == "random" else steps >= 60
        assert traces[0] == traces[1], policy
    rewards = [t[2] for t in traces[0] if len(t) == 6]
    assert any(r > 0 for r in rewards)  # purchases happened and were scored


def test_env_args_flag_reaches_the_env(tmp_path):
    args = EnvArgs(num_products=N + 1, catalog_cache=str(tmp_path))
    try:
        env = args.make()
        assert isinstance(env.unwrapped.catalog, StoredCatalog)
        assert args.goal_count() == len(env.unwrapped.goals)
        assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [
            env.unwrapped.catalog.folder.name]
    finally:
        store.set_catalog_cache(None)


def test_cache_root_settings(monkeypatch, tmp_path):
    monkeypatch.delenv(store.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert store.cache_root("off", 10**6) is None
    assert store.cache_root(None, 1000) is None  # auto: small catalogs are built in memory
    assert store.cache_root(None, 100_000) == tmp_path / "webgrove" / "catalogs"
    assert store.cache_root(str(tmp_path / "c"), 10) == tmp_path / "c"  # a folder: always
    monkeypatch.setenv(store.ENV_VAR, "off")
    assert store.cache_root(None, 10**6) is None


def _open_in_worker(args: tuple[str, int]) -> list[int]:
    folder, n = args
    catalog, index = open_or_build(Path(folder), {"n": n}, lambda: generate_catalog(n))
    return index.search(catalog.goals[0].instruction)


def test_workers_starting_together_build_one_store(tmp_path):
    folder = tmp_path / "shared"
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.map(_open_in_worker, [(str(folder), N)] * 3)
    assert results[0] and results.count(results[0]) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [".shared.lock", "shared"]  # no temporary leftovers


@pytest.fixture
def built(tmp_path) -> Path:
    folder = tmp_path / "store"
    open_or_build(folder, {"n": 300}, lambda: generate_catalog(300))
    return folder


def test_corrupt_file_is_named(built):
    data = bytearray((built / "products.bin").read_bytes())
    data[100] ^= 0x01
    (built / "products.bin").write_bytes(bytes(data))
    with pytest.raises(CatalogStoreError, match=r"products\.bin: CRC-32 mismatch"):
        open_store(built)


def test_truncated_and_missing_files_are_named(built):
    index_file = built / "index" / "data.csc.index.npy"
    index_file.write_bytes(index_file.read_bytes()[:-8])
    with pytest.raises(CatalogStoreError, match=r"data\.csc\.index\.npy: \d+ bytes, expected \d+"):
        open_store(built)
    (built / "goals.offsets.npy").unlink()
    (built / "manifest.json").write_text(json.dumps({"nope": 1}))
    with pytest.raises(CatalogStoreError, match=r"manifest\.json: missing or unreadable"):
        open_store(built)


def test_broken_store_is_rebuilt(built, caplog):
    (built / "goals.bin").write_bytes(b"garbage")
    catalog, index = open_or_build(built, {"n": 300}, lambda: generate_catalog(300))
    assert "rebuilding it" in caplog.text and "goals.bin" in caplog.text
    _same_catalog(catalog, generate_catalog(300))


def test_other_identity_is_refused(built):
    with pytest.raises(CatalogStoreError, match="holds catalog"):
        open_store(built, {"n": 301})


def test_undecodable_record_names_file_and_record(tmp_path):
    (tmp_path / "products.bin").write_bytes(b'["B0A"]{not json')
    np.save(tmp_path / "products.offsets.npy", np.array([0, 7, 16], dtype=np.int64))
    records = store.Records(tmp_path / "products", store._decode_product)
    with pytest.raises(CatalogStoreError, match=r"products\.bin: record 0 .*cannot be decoded"):
        records[0]
    with pytest.raises(CatalogStoreError, match=r"products\.bin: record 1 \(bytes 7:16\)"):
        records[1]


def test_store_key_follows_the_identity(tmp_path):
    a = store.store_folder(tmp_path, "synthetic", {"seed": 0})
    assert a == store.store_folder(tmp_path, "synthetic", {"seed": 0})
    assert a != store.store_folder(tmp_path, "synthetic", {"seed": 1})


def test_default_engine_without_a_store_is_unchanged():
    engine = get_engine(num_products=N, catalog_cache="off")
    assert engine.catalog.products == generate_catalog(N).products


def test_build_catalog_command_builds_then_checks(tmp_path, capsys):
    from webgrove.cli import main

    assert main(["shop", "build-catalog", "--num-products", "300", "--catalog-cache", str(tmp_path)]) == 0
    first = capsys.readouterr().out
    assert "synthetic-300-seed0: 300 products" in first and str(tmp_path) in first
    stores = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert len(stores) == 1 and (stores[0] / "manifest.json").is_file()
    (stores[0] / "asins.npy").write_bytes(b"broken")
    synthetic_engine.cache_clear()  # a new process would open the store again
    assert main(["shop", "build-catalog", "--num-products", "300", "--catalog-cache", str(tmp_path)]) == 0
    assert (stores[0] / "asins.npy").read_bytes() != b"broken"  # rebuilt
    assert main(["shop", "build-catalog", "--catalog-cache", "off"]) == 2
