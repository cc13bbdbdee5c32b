"""One shop catalog per machine: the catalog and its BM25 index as memory-mapped files.

Building a catalog and its search index costs every process that needs it (at 100k
products about 13 s and 650 MB each). A *catalog store* is that work written once to a
folder that every worker maps read-only, so the pages are shared by the operating
system and a worker starts by opening files:

    manifest.json            format, identity, name, counts, splits; size and CRC-32 of every file
    products.bin             one compact JSON array per product, back to back (UTF-8)
    products.offsets.npy     int64 (num_products + 1,): record i is bin[off[i]:off[i+1]]
    goals.bin, goals.offsets.npy       the goals, likewise
    split-<name>.npy         int64 goal indices of each split, in the split's order
    asins.npy, asin_rows.npy sorted asins (bytes) and the product row of each, for lookups
    index/                   the BM25 index in bm25s's own format (`BM25.save`), mapped
                             with `BM25.load(mmap=True)`, and beside it the score bounds of
                             the pruned search (`search.ScoreBounds`): bounds.term_max.npy,
                             bounds.lengths.npy, bounds.dense_row.npy, bounds.dense.npy

Records are decoded when read (a small LRU keeps recent ones), so a worker holds only
what it touched. A store sits in `<cache root>/<name>-<key>/`, where the key hashes the
catalog's identity (source, size, seed or data files, and the code that builds it), so a
changed generator or data file never reads a stale store. A store is built in a
temporary folder under a lock and renamed into place, so a worker never sees half a
store; opening one checks every file's size and CRC-32 and raises `CatalogStoreError`
naming the file (`open_or_build` then rebuilds it).

The cache root comes from `catalog_cache` (ShopEnv, get_engine, `--catalog-cache`), else
the environment variable WEBGROVE_CATALOG_CACHE, else "auto":
    "auto"   $XDG_CACHE_HOME/webgrove/catalogs (default ~/.cache/...), used only for
             catalogs worth it: >= 10,000 synthetic products, or WebShop files >= 10 MB;
    "off"    no store: every process builds its catalog in memory (as before);
    a path   that folder, for every catalog.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import mmap
import os
import shutil
import tempfile
import time
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from webgrove.envs.shop.catalog import Catalog, Goal, Product, Review

logger = logging.getLogger(__name__)

STORE_FORMAT = 1
ENV_VAR = "WEBGROVE_CATALOG_CACHE"
AUTO, OFF = "auto", "off"
AUTO_MIN_PRODUCTS = 10_000  # smaller synthetic catalogs build in about a second: no store
AUTO_MIN_BYTES = 10 * 2**20  # WebShop product files smaller than this load in about a second
MANIFEST = "manifest.json"
# The files whose code decides a store's content: any change to them is a new store.
_SOURCES = ("catalog.py", "synthetic.py", "vocab.py", "webshop_data.py", "search.py", "actions.py", "store.py")

_default_setting: str | None = None


class CatalogStoreError(RuntimeError):
    """A catalog store file is missing, truncated, corrupt or from another catalog."""

    def __init__(self, path, problem: str):
        self.path = Path(path)
        super().__init__(f"{path}: {problem}")


# --- where stores live --------------------------------------------------------------


def set_catalog_cache(setting: str | os.PathLike | None) -> None:
    """This process's default for `catalog_cache` (what `--catalog-cache` sets); None: unset."""
    global _default_setting
    _default_setting = None if setting is None else str(setting)


def cache_root(setting: str | os.PathLike | None, size_hint: int | None, big: int = AUTO_MIN_PRODUCTS) -> Path | None:
    """The folder stores go in for this setting, or None for no store.

    Args:
        setting: a folder, "auto" or "off"; None: the process default, else $WEBGROVE_CATALOG_CACHE,
            else "auto".
        size_hint: the catalog's size in the unit of `big` (None: unknown, counted as big).
        big: the size from which "auto" uses a store.
    """
    if setting is None:
        setting = _default_setting or os.environ.get(ENV_VAR) or AUTO
    setting = str(setting)
    if setting.lower() in (OFF, "none", "0", "false"):
        return None
    if setting.lower() == AUTO:
        if size_hint is not None and size_hint < big:
            return None
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / "webgrove" / "catalogs"
    return Path(setting).expanduser()


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of the code that builds catalogs and indexes (and of bm25s's version)."""
    import importlib.metadata

    h = hashlib.sha256(importlib.metadata.version("bm25s").encode())
    here = Path(__file__).parent
    for name in _SOURCES:
        h.update(name.encode() + b"\0" + (here / name).read_bytes())
    return h.hexdigest()[:16]


def store_folder(root: Path, name: str, identity: dict) -> Path:
    """`root/<name>-<key>`: the key hashes the identity, the format and the code version."""
    full = {**identity, "format": STORE_FORMAT, "code": code_version()}
    key = hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()[:16]
    return root / f"{name}-{key}"


# --- building and opening -------------------------------------------------------------


def open_or_build(folder: Path, identity: dict, build: Callable[[], Catalog]):
    """The store in `folder` as (StoredCatalog, SearchIndex), built with `build()` first if absent.

    Concurrent callers (workers starting together) build it once: one holds the lock and
    builds into a temporary folder renamed into place; the others wait and then open it.
    A store that fails its checks is logged (naming the file), removed and rebuilt.
    """
    if (folder / MANIFEST).exists():
        with contextlib.suppress(CatalogStoreError):
            return open_store(folder, identity)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _locked(folder.parent / f".{folder.name}.lock"):
        if (folder / MANIFEST).exists() or folder.exists():
            try:
                return open_store(folder, identity)
            except CatalogStoreError as exc:
                logger.warning("catalog store unusable, rebuilding it: %s", exc)
                _remove(folder)
        for stale in folder.parent.glob(f".{folder.name}.tmp-*"):  # a builder killed mid-way
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
        try:
            logger.info("building the catalog store %s (once per machine and catalog)", folder)
            build_store(build, tmp, identity)
            os.rename(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return open_store(folder, identity)


def build_store(build: Callable[[], Catalog], folder: Path, identity: dict, timings: dict | None = None) -> None:
    """Build the catalog with `build()` and write it as a store into `folder` (a fresh temporary one).

    The records are written by a forked child process while this one tokenizes and indexes
    (two cores: the build takes the longer of the two, not their sum; see `_RecordWriter`);
    where forking is not safe (other threads running) they are written first, as before.
    The catalog is released once its tokens are taken, before the index is built. `timings`,
    when given, receives each phase's wall and CPU seconds (write_records: the child's, and
    write_records_wait_s: how long the build waited for it at the end).
    """
    from webgrove.envs.shop.search import SearchIndex, TokenIds, build_bm25, cyclic_gc_paused

    clock = _Phases(timings if timings is not None else {})
    folder = Path(folder)
    with cyclic_gc_paused():
        catalog = clock("generate", build)
        meta = _catalog_meta(catalog)
        writer = _RecordWriter.start(catalog, folder)
        try:
            if writer is None:
                clock("write_records", lambda: _write_catalog(catalog, folder))
            corpus = clock("tokenize", lambda: TokenIds(catalog.products))
            del catalog
            clock("index", lambda: SearchIndex(bm25=build_bm25(corpus)).save(folder / "index"))
            del corpus
        finally:
            if writer is not None:
                clock.out.update(writer.join())
    clock("manifest", lambda: _write_manifest(folder, identity, meta))


class _RecordWriter:
    """`_write_catalog` in a forked child process (copy-on-write: it shares the catalog's pages).

    Encoding records is pure Python (about a fifth of a 1M-product build) and independent of
    tokenizing and indexing, so on two cores it costs no wall time. Forking is only safe in a
    process with one thread (a lock held by another thread would stay held in the child), so
    `start` returns None elsewhere, and the caller writes the records itself.
    """

    def __init__(self, pid: int, started: float, children_cpu: float):
        self.pid, self.started, self.children_cpu = pid, started, children_cpu

    @classmethod
    def start(cls, catalog: Catalog, folder: Path) -> "_RecordWriter | None":
        import threading

        if not hasattr(os, "fork") or threading.active_count() != 1:
            return None
        started, cpu = time.perf_counter(), _children_cpu()
        pid = os.fork()
        if pid == 0:  # the child: write, report by exit status, skip the parent's teardown
            code = 1
            try:
                _write_catalog(catalog, folder)
                code = 0
            except BaseException:
                logger.exception("writing the catalog records into %s failed", folder)
            finally:
                os._exit(code)
        return cls(pid, started, cpu)

    def join(self) -> dict:
        """Wait for the child; its wall and CPU seconds. Raises RuntimeError if it failed."""
        waited = time.perf_counter()
        _, status = os.waitpid(self.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"the process writing the catalog records failed (exit status {status})")
        now = time.perf_counter()
        return {"write_records_s": round(now - self.started, 2), "write_records_wait_s": round(now - waited, 2),
                "write_records_cpu_s": round(_children_cpu() - self.children_cpu, 2)}


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class _Phases:
    """Runs a phase and records its wall and CPU seconds under its name."""

    def __init__(self, out: dict):
        self.out = out

    def __call__(self, name: str, fn: Callable[[], object]):
        t, c = time.perf_counter(), time.process_time()
        value = fn()
        self.out[f"{name}_s"] = round(time.perf_counter() - t, 2)
        self.out[f"{name}_cpu_s"] = round(time.process_time() - c, 2)
        return value


def write_store(catalog: Catalog, folder: Path, identity: dict, index=None) -> None:
    """Write `catalog` and its index (built here when not given) as a store into `folder`."""
    from webgrove.envs.shop.search import SearchIndex

    meta = _write_catalog(catalog, Path(folder))
    (index if index is not None else SearchIndex(catalog.products)).save(Path(folder) / "index")
    _write_manifest(Path(folder), identity, meta)


def _write_catalog(catalog: Catalog, folder: Path) -> dict:
    """Products, goals, splits and the asin lookup; what the manifest says of the catalog."""
    _write_records(folder / "products", catalog.products, _encode_product)
    _write_records(folder / "goals", catalog.goals, _encode_goal)
    for name, indices in catalog.splits.items():
        np.save(folder / f"split-{name}.npy", np.asarray(indices, dtype=np.int64))
    asins = np.array([p.asin.encode("utf-8") for p in catalog.products], dtype=bytes)
    rows = np.argsort(asins, kind="stable")
    np.save(folder / "asins.npy", asins[rows])
    np.save(folder / "asin_rows.npy", rows.astype(np.int64))
    return _catalog_meta(catalog)


def _catalog_meta(catalog: Catalog) -> dict:
    return {"name": catalog.name, "num_products": len(catalog.products), "num_goals": len(catalog.goals),
            "splits": sorted(catalog.splits)}


def _write_manifest(folder: Path, identity: dict, meta: dict) -> None:
    """Written last: a store without its manifest is not a store."""
    files = {str(p.relative_to(folder)): {"size": p.stat().st_size, "crc32": _crc32(p)}
             for p in sorted(folder.rglob("*")) if p.is_file()}
    manifest = {"format": STORE_FORMAT, "code": code_version(), "identity": identity, **meta, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")


def open_store(folder: Path, identity: dict | None = None):
    """The store in `folder` as (StoredCatalog, SearchIndex), after checking every file.

    Raises:
        CatalogStoreError: naming the file that is missing, of the wrong size, corrupt
            (CRC-32), or a manifest of another format, code version or catalog identity.
    """
    from webgrove.envs.shop.search import SearchIndex

    folder = Path(folder)
    manifest = verify_store(folder, identity)
    catalog = StoredCatalog(folder, manifest)
    try:
        index = SearchIndex.load(folder / "index", mmap=True)
    except (OSError, ValueError) as exc:
        raise CatalogStoreError(folder / "index", f"cannot load the BM25 index: {exc}") from exc
    return catalog, index


def verify_store(folder: Path, identity: dict | None = None) -> dict:
    """The store's manifest, after checking its format, identity and every file's size and CRC-32."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CatalogStoreError(path, f"missing or unreadable manifest ({exc}); delete the folder to rebuild") from exc
    if manifest.get("format") != STORE_FORMAT or manifest.get("code") != code_version():
        raise CatalogStoreError(path, "written by another version of webgrove; delete the folder to rebuild")
    if identity is not None and manifest.get("identity") != identity:
        raise CatalogStoreError(path, f"holds catalog {manifest.get('identity')}, not {identity}")
    for name, expected in files.items():
        file = folder / name
        if not file.is_file():
            raise CatalogStoreError(file, "missing")
        size = file.stat().st_size
        if size != expected["size"]:
            raise CatalogStoreError(file, f"{size} bytes, expected {expected['size']} (truncated or replaced)")
        if _crc32(file) != expected["crc32"]:
            raise CatalogStoreError(file, "CRC-32 mismatch: the file is corrupt")
    return manifest


# --- the catalog as read from a store ------------------------------------------------


class Records(Sequence):
    """A read-only sequence of records decoded on access from `<stem>.bin` + `<stem>.offsets.npy`."""

    def __init__(self, stem: Path, decode: Callable[[list], object], cache_size: int = 4096):
        self._path = stem.with_suffix(".bin")
        self._offsets = np.load(stem.with_suffix(".offsets.npy"), mmap_mode="r")
        with open(self._path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self._data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        self._decode = decode
        self._cache: OrderedDict[int, object] = OrderedDict()
        self._cache_size = cache_size

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"record {i} out of range ({len(self)} records)")
        hit = self._cache.get(i)
        if hit is not None:
            self._cache.move_to_end(i)
            return hit
        start, end = int(self._offsets[i]), int(self._offsets[i + 1])
        try:
            record = self._decode(json.loads(self._data[start:end]))
        except (ValueError, TypeError, IndexError) as exc:
            raise CatalogStoreError(self._path, f"record {i} (bytes {start}:{end}) cannot be decoded: {exc}") from exc
        self._cache[i] = record
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return record

    def __iter__(self) -> Iterator:
        return (self[i] for i in range(len(self)))


class SplitGoals(Sequence):
    """The goals of one split, read through the store (what `Catalog.split_goals` lists)."""

    def __init__(self, goals: Records, indices: np.ndarray):
        self._goals, self._indices = goals, indices

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self._goals[int(self._indices[i])]


class StoredCatalog:
    """A `Catalog` read from a store: the same methods, products and goals decoded on access."""

    def __init__(self, folder: Path, manifest: dict):
        self.folder = Path(folder)
        self.name: str = manifest["name"]
        self.products: Records = Records(self.folder / "products", _decode_product, cache_size=4096)
        self.goals: Records = Records(self.folder / "goals", _decode_goal, cache_size=1024)
        self.splits = {name: np.load(self.folder / f"split-{name}.npy", mmap_mode="r") for name in manifest["splits"]}
        self._asins = np.load(self.folder / "asins.npy", mmap_mode="r")
        self._asin_rows = np.load(self.folder / "asin_rows.npy", mmap_mode="r")

    def _row(self, asin: str) -> int | None:
        key = asin.encode("utf-8")
        if not key or len(key) > self._asins.dtype.itemsize or key.endswith(b"\0"):
            return None
        at = int(np.searchsorted(self._asins, key, side="right")) - 1  # the last of equal asins, as Catalog
        return int(self._asin_rows[at]) if at >= 0 and self._asins[at] == key else None

    def product(self, asin: str) -> Product:
        """The product with this asin (case-insensitive). Raises KeyError if absent."""
        row = self._row(asin)
        if row is None:
            row = self._row(asin.upper())
        if row is None:
            raise KeyError(f"no product with asin {asin!r}")
        return self.products[row]

    def has_product(self, asin: str) -> bool:
        return self._row(asin) is not None or self._row(asin.upper()) is not None

    def split_goals(self, split: str) -> SplitGoals:
        """The goals of a split, in the split's fixed order (goal_id = position)."""
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; choose from {sorted(self.splits)}")
        return SplitGoals(self.goals, self.splits[split])


# --- records -------------------------------------------------------------------------


def _encode_product(p: Product) -> list:
    return [p.asin, p.title, p.category, p.query, p.product_category, p.brand, p.pricing, p.price, p.options,
            p.attributes, p.bullet_points, p.description, p.small_description,
            [[r.score, r.title, r.body] for r in p.reviews], p.rating, p.title_nouns]


def _decode_product(r: list) -> Product:
    return Product(asin=r[0], title=r[1], category=r[2], query=r[3], product_category=r[4], brand=r[5],
                   pricing=r[6], price=r[7], options=r[8], attributes=r[9], bullet_points=r[10],
                   description=r[11], small_description=r[12], reviews=[Review(*x) for x in r[13]],
                   rating=r[14], title_nouns=r[15])


def _encode_goal(g: Goal) -> list:
    return [g.asin, g.instruction, g.attributes, g.goal_options, g.price_upper, g.query, g.name,
            g.product_category, g.category, g.title_nouns, g.options_as_list]


def _decode_goal(r: list) -> Goal:
    return Goal(asin=r[0], instruction=r[1], attributes=r[2], goal_options=r[3], price_upper=r[4], query=r[5],
                name=r[6], product_category=r[7], category=r[8], title_nouns=r[9], options_as_list=r[10])


def _write_records(stem: Path, items, encode: Callable[[object], list]) -> None:
    offsets = [0]
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
    with open(stem.with_suffix(".bin"), "wb") as f:
        for item in items:
            data = dumps(encode(item)).encode("utf-8")
            f.write(data)
            offsets.append(offsets[-1] + len(data))
    np.save(stem.with_suffix(".offsets.npy"), np.asarray(offsets, dtype=np.int64))


# --- files ---------------------------------------------------------------------------


def _crc32(path: Path, chunk: int = 8 * 2**20) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            crc = zlib.crc32(block, crc)
    return crc


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _remove(folder: Path) -> None:
    """Move a broken store aside (workers that mapped it keep their mappings) and delete it."""
    aside = folder.with_name(f".{folder.name}.broken-{os.getpid()}")
    os.rename(folder, aside)
    shutil.rmtree(aside, ignore_errors=True)
