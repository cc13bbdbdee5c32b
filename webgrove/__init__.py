"""webgrove: train web agents that improve themselves.

The packages install under this one namespace (see pyproject.toml's package-dir map,
which keeps the repository's top-level folders):

- `webgrove.envs`      environments (the shop, browser envs), Gymnasium ids `webgrove/...`
- `webgrove.agents`    policies, critics, prompt formats
- `webgrove.search`    MCTS (Agent Q), tree records, collection, the tree viewer
- `webgrove.training`  pair/trajectory builders, DPO/SFT on TRL, the improve loop, the demo
- `webgrove.cli`       the `webgrove` command

Importing `webgrove` imports nothing else; docs/DESIGN.md is the map.
"""

__version__ = "0.2.0"
