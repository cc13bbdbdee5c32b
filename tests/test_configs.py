"""The accelerate configs shipped in configs/ load as accelerate configs of the kind their name says."""
from __future__ import annotations

from pathlib import Path

import pytest

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "accelerate").glob("*.yaml"))
KINDS = {"ddp_gpu": "MULTI_GPU", "deepspeed_zero2": "DEEPSPEED", "deepspeed_zero3": "DEEPSPEED", "fsdp": "FSDP"}


def test_every_kind_is_shipped():
    assert sorted(p.stem for p in CONFIGS) == sorted(KINDS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads(path):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.distributed_type.name == KINDS[path.stem]
    assert config.num_machines == 1 and config.mixed_precision == "bf16"
    if config.distributed_type.name == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == int(path.stem[-1])
    if config.distributed_type.name == "FSDP":
        assert config.fsdp_config["fsdp_version"] == 2
