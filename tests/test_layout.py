"""The architecture's promises, checked on the code as it stands (docs/DESIGN.md, "Layers").

- one installed top-level name, `webgrove`;
- imports run one way: envs <- agents <- search <- training <- cli (webgrove/io.py is a base
  every layer may use); no heavy import at module level of envs or agents;
- `import webgrove.envs` loads no torch, transformers, trl, peft, playwright or bm25s;
- the README's python snippets that need no browser and no model run as written.
"""
from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"envs": "webgrove.envs", "agents": "webgrove.agents", "search": "webgrove.search",
           "training": "webgrove.training", "webgrove": "webgrove"}
# Layer of each subpackage; a module may import only from its own layer or below.
LAYERS = {"webgrove.io": 0, "webgrove.envs": 1, "webgrove.agents": 2, "webgrove.search": 3,
          "webgrove.training": 4, "webgrove.cli": 5, "webgrove.__main__": 5, "webgrove": 0}
HEAVY = ("torch", "transformers", "trl", "peft", "playwright", "accelerate", "datasets", "ray")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of ours."""
    modules = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


def layer_of(module: str) -> int | None:
    """The layer of a dotted name of ours (longest matching prefix), None if not ours."""
    best = None
    for prefix, layer in LAYERS.items():
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, layer)
    return None if best is None else best[1]


def imports_of(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import statement in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno, id(node) in top_level))
    return found


def test_distribution_exposes_only_webgrove():
    dist = importlib.metadata.distribution("webgrove")
    top_level = (dist.read_text("top_level.txt") or "").split()
    assert top_level == ["webgrove"]
    for bare in ("envs", "agents", "search", "training"):
        found = subprocess.run([sys.executable, "-c", f"import {bare}"], cwd="/", capture_output=True)
        assert found.returncode != 0, f"`import {bare}` works outside the checkout"


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {name for name, path in module_files().items() if path.name == "__init__.py"}
    assert on_disk == listed


def test_imports_run_one_way():
    backwards = []
    for module, path in module_files().items():
        mine = layer_of(module)
        for target, line, _ in imports_of(path):
            theirs = layer_of(target)
            if theirs is not None and theirs > mine:
                backwards.append(f"{path.relative_to(ROOT)}:{line} {module} -> {target}")
    assert backwards == []


def test_no_heavy_import_at_module_level_of_envs_or_agents():
    heavy = []
    for module, path in module_files().items():
        if layer_of(module) not in (1, 2):
            continue
        for target, line, top in imports_of(path):
            if top and target.split(".")[0] in HEAVY:
                heavy.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert heavy == []


@pytest.mark.parametrize("module", ["webgrove", "webgrove.envs", "webgrove.agents", "webgrove.cli"])
def test_light_imports(module):
    code = (f"import sys, {module}; print(' '.join(sorted(m for m in sys.modules "
            f"if m.split('.')[0] in {HEAVY + ('bm25s',)!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def readme_python_snippets() -> list[tuple[int, str]]:
    text = (ROOT / "README.md").read_text()
    return [(text[:m.start()].count("\n") + 1, m.group(1))
            for m in re.finditer(r"```python\n(.*?)```", text, flags=re.S)]


NEEDS_BROWSER_OR_MODEL = re.compile(r"Browser|miniwob|Booking|runs/|from_pretrained|make_policy\(\"(?!rule|oracle|random)")


def test_readme_has_snippets():
    assert len(readme_python_snippets()) >= 3


@pytest.mark.parametrize("line,code", [s for s in readme_python_snippets() if not NEEDS_BROWSER_OR_MODEL.search(s[1])],
                         ids=lambda v: f"README:{v}" if isinstance(v, int) else "")
def test_readme_snippet_runs(line, code, tmp_path):
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"README.md line {line}:\n{out.stderr[-2000:]}"
