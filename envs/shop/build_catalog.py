"""`webgrove shop build-catalog`: build a shop catalog store ahead of the workers that map it.

Workers build a missing store themselves (once: the others wait on its lock), so this
command is optional: it builds the store on a node before a run, and run again it checks
the store (every file's size and CRC-32, as every worker's open does; a broken store is
rebuilt).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from webgrove.envs.errors import UsageError


@dataclass
class BuildCatalogConfig:
    """Build (or check) the memory-mapped store of a shop catalog, as workers would open it."""

    num_products: int | None = field(default=None, metadata={
        "help": "catalog size (default: 1000 synthetic products, or every product with --data-dir)"})
    catalog_seed: int = field(default=0, metadata={"help": "seed of the synthetic catalog"})
    data_dir: str | None = field(default=None, metadata={
        "help": "folder with the original WebShop data files (default: the synthetic catalog)"})
    goal_set: str = field(default="synthetic", metadata={
        "help": "goals of the WebShop files: synthetic or human", "choices": ["synthetic", "human"]})
    catalog_cache: str = field(default="auto", metadata={
        "help": "folder of the stores (auto: $WEBGROVE_CATALOG_CACHE, else ~/.cache/webgrove/catalogs)"})

    def __post_init__(self) -> None:
        if self.num_products is not None and self.num_products < 1:
            raise UsageError(f"--num-products must be at least 1, got {self.num_products}")
        if str(self.catalog_cache).lower() in ("off", "none", "0", "false"):
            raise UsageError("--catalog-cache must be a folder or auto: this command builds a store")


def run_build_catalog(config: BuildCatalogConfig) -> int:
    import os

    from webgrove.envs.shop.engine import synthetic_engine, webshop_engine
    from webgrove.envs.shop.store import ENV_VAR, cache_root

    setting = config.catalog_cache
    if setting == "auto":
        setting = os.environ.get(ENV_VAR) or "auto"
    root = str(cache_root(setting, size_hint=None))
    t = time.perf_counter()
    if config.data_dir is not None:
        engine = webshop_engine(config.data_dir, config.goal_set, config.num_products, root)
    else:
        if config.goal_set != "synthetic":
            raise UsageError(f"--goal-set {config.goal_set} needs the original WebShop files: add --data-dir DIR")
        n = 1000 if config.num_products is None else config.num_products
        engine = synthetic_engine(n, config.catalog_seed, root)
    folder = engine.catalog.folder
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    sys.stdout.write(f"{engine.catalog.name}: {len(engine.catalog.products)} products, "
                     f"{len(engine.catalog.goals)} goals, {size / 2**20:.0f} MB in {folder} "
                     f"(checked; {time.perf_counter() - t:.1f} s)\n")
    return 0
