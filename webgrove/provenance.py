"""What a results file records about how it was made: the command, package versions, the host.

Every results JSON (`webgrove rollout --json`, the improve loop's and the demo's) carries
`provenance()`, so a figure can be traced to the exact command and software that produced it.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import sys

PACKAGES = ("webgrove", "torch", "transformers", "trl", "peft", "numpy", "gymnasium", "tokenizers")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (None: not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def command_line(argv: list[str] | None = None) -> str:
    """The command as a user would type it: `webgrove ...` for our entry points."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return ""
    head = os.path.basename(argv[0])
    if head in ("webgrove", "__main__.py"):
        argv[0] = "webgrove"
    return shlex.join(argv)


def provenance() -> dict:
    """The command, package versions, Python, platform, CPU count and load average now."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"command": command_line(), "versions": package_versions(), "python": platform.python_version(),
            "platform": platform.platform(), "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in load] if load else None}
