"""A local, deterministic page for conformance tests of `webgrove/Browser-v0`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from webgrove.envs.browser.evaluators import TextPresent

PAGE = Path(__file__).with_name("conformance.html")


def conformance_kwargs() -> dict[str, Any]:
    """`gymnasium.make("webgrove/Browser-v0", **conformance_kwargs())` needs no server or network."""
    return {
        "start_url": PAGE.as_uri(),
        "goal": "Press the button three times.",
        "evaluator": TextPresent("Pressed 3 times"),
        "allowed_origins": [PAGE.as_uri()],  # this one file
    }
