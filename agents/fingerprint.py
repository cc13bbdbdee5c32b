"""Fingerprints of policies: a short string that changes when the acting policy does.

Trees record who collected them, so that a rerun never reuses trees made by another
model (retraining a model in place changes its fingerprint):

- a local model directory: `model:sha256:<hex>`, a hash of its weight, config and
  tokenizer files (names, sizes and contents of the top-level files listed below);
- an OpenAI-compatible server: `openai:<base url>#<model name>`;
- a scripted policy: `scripted:<name>`; a `package.module:factory` spec: `factory:<spec>`,
  followed by `:<factory.fingerprint()>` when the factory has a `fingerprint` function
  (your own model policy can say which weights it loads that way).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from webgrove.agents.specs import _OBJECT_SPEC, SCRIPTED, _load_object
from webgrove.envs.errors import UsageError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt")
MODEL_FILES = ("config.json", "generation_config.json", "adapter_config.json", "tokenizer.json",
               "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json", "vocab.txt",
               "merges.txt", "tokenizer.model", "spiece.model", "chat_template.jinja", "chat_template.json")
NOT_MODEL_FILES = ("training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth")  # trainer state
_CHUNK = 1 << 20


def model_files(path: str | Path) -> list[Path]:
    """The files of a model directory that make the model: weights, configs, tokenizer (sorted)."""
    folder = Path(path)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name not in NOT_MODEL_FILES
                  and (p.name in MODEL_FILES or p.name.endswith(WEIGHT_SUFFIXES)))


def model_fingerprint(path: str | Path) -> str:
    """`model:sha256:<hex>` over the model files' names, sizes and contents.

    Raises:
        UsageError: the directory holds no weight file.
    """
    files = model_files(path)
    if not any(p.name.endswith(WEIGHT_SUFFIXES) for p in files):
        raise UsageError(f"{path} holds no weight file ({', '.join('*' + s for s in WEIGHT_SUFFIXES)}); "
                         "give a model directory (e.g. one written by `webgrove init-model`)")
    digest = hashlib.sha256()
    for p in files:
        digest.update(f"{p.name}\0{p.stat().st_size}\0".encode())
        with p.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    return f"model:sha256:{digest.hexdigest()}"


def policy_fingerprint(spec: str, base_url: str | None = None, model_name: str | None = None) -> str:
    """The fingerprint of the policy a spec names (see the module's docstring), without loading it.

    Raises:
        UsageError: a spec that names no policy, or a model directory without weights.
    """
    if spec in SCRIPTED:
        return f"scripted:{spec}"
    if _OBJECT_SPEC.match(spec):
        own = getattr(_load_object(spec), "fingerprint", None)
        return f"factory:{spec}" + (f":{own()}" if callable(own) else "")
    if spec == "openai":
        if not base_url or not model_name:
            raise UsageError("--policy openai needs --base-url URL and --model-name NAME")
        return f"openai:{base_url.rstrip('/')}#{model_name}"
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise UsageError(f"unknown policy {spec!r}: not oracle, rule, random, openai, package.module:factory "
                         "or a model directory")
    return model_fingerprint(path)
