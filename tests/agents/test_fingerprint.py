"""Policy fingerprints: a model directory's changes with its weights, config and tokenizer only."""
from __future__ import annotations

import pytest

from webgrove.agents.fingerprint import model_fingerprint, policy_fingerprint
from webgrove.envs.errors import UsageError


def _model(folder, weights=b"\x00\x01weights", tokenizer='{"model": {"vocab": {"a": 0}}}'):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "gpt2", "n_layer": 2}')
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "tokenizer.json").write_text(tokenizer)
    return folder


def test_a_model_fingerprint_follows_weights_config_and_tokenizer(tmp_path):
    base = model_fingerprint(_model(tmp_path / "a"))
    assert base.startswith("model:sha256:") and len(base) == len("model:sha256:") + 64
    assert model_fingerprint(_model(tmp_path / "copy")) == base  # where it lives does not matter
    assert model_fingerprint(_model(tmp_path / "w", weights=b"\x00\x02weights")) != base
    assert model_fingerprint(_model(tmp_path / "t", tokenizer='{"model": {"vocab": {"b": 0}}}')) != base
    changed = _model(tmp_path / "c")
    (changed / "config.json").write_text('{"model_type": "gpt2", "n_layer": 3}')
    assert model_fingerprint(changed) != base
    # trainer state, logs and checkpoints are not the model
    extra = _model(tmp_path / "e")
    (extra / "training_args.bin").write_bytes(b"run-specific")
    (extra / "train_result.json").write_text("{}")
    (extra / "checkpoints").mkdir()
    (extra / "checkpoints" / "model.safetensors").write_bytes(b"older")
    assert model_fingerprint(extra) == base


def test_policy_fingerprints_by_kind(tmp_path):
    assert policy_fingerprint("rule") == "scripted:rule"
    assert policy_fingerprint("openai", "http://127.0.0.1:8000/v1/", "m") == "openai:http://127.0.0.1:8000/v1#m"
    assert policy_fingerprint(str(_model(tmp_path / "m"))) == model_fingerprint(tmp_path / "m")
    with pytest.raises(UsageError, match="no weight file"):
        (tmp_path / "empty").mkdir()
        policy_fingerprint(str(tmp_path / "empty"))
    with pytest.raises(UsageError, match="base-url"):
        policy_fingerprint("openai")
    with pytest.raises(UsageError, match="unknown policy"):
        policy_fingerprint("no/such/dir")
