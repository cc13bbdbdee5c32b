"""The `webgrove` command.

Each subcommand is a config dataclass (fields carry their `help` in metadata) and
a run function taking that config, both living in the module that owns the work.
This file only turns dataclasses into argparse parsers and imports a command's
module when that command runs, so `webgrove --help` stays fast.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import types
import typing
from typing import Any

# (words) -> ("module", "ConfigClass", "run_function", one-line help)
COMMANDS: dict[tuple[str, ...], tuple[str, str, str, str]] = {
    ("rollout",): ("webgrove.search.rollout", "RolloutConfig", "run_rollout",
                   "run episodes of a policy (greedy or with MCTS) and report success rate and score"),
    ("collect",): ("webgrove.search.collect", "CollectConfig", "run_collect",
                   "collect one MCTS search tree per goal (JSONL), resumable and in parallel"),
    ("view",): ("webgrove.search.viewer", "ViewConfig", "run_view",
                "draw a search tree file as a self-contained HTML page"),
    ("init-model",): ("webgrove.training.tiny", "InitModelConfig", "run_init_model",
                      "write a freshly initialised tiny causal LM and its locally trained tokenizer"),
    ("pairs",): ("webgrove.training.pairs", "PairsConfig", "run_pairs",
                 "build DPO pairs, RFT rows or revision trajectories from search trees"),
    ("demos",): ("webgrove.training.sft", "DemosConfig", "run_demos",
                 "record oracle demonstrations as SFT rows for behaviour cloning"),
    ("eval",): ("webgrove.training.evaluate", "EvalConfig", "run_eval",
                "evaluate a model on held-out goals, greedily or with MCTS (success rate, score)"),
    ("improve",): ("webgrove.training.loop", "ImproveConfig", "run_improve_command",
                   "self-improvement loop: MCTS trees -> Agent Q pairs -> DPO -> held-out evaluation, N times"),
    ("demo",): ("webgrove.training.demo", "DemoConfig", "run_demo",
                "the whole story on a CPU: init-model, behaviour cloning, baselines and Agent Q, evaluation"),
    ("train", "sft"): ("webgrove.training.sft", "SFTRunConfig", "run_sft",
                       "supervised fine-tuning on prompt/completion rows (loss on completions only)"),
    ("train", "dpo"): ("webgrove.training.dpo", "DPORunConfig", "run_dpo",
                       "off-policy DPO on preference pairs (TRL + PEFT LoRA; reference log-probs from the trees)"),
    ("train", "merge"): ("webgrove.training.sft", "MergeConfig", "run_merge",
                         "merge a LoRA adapter into its base model as a plain model directory"),
    ("shop", "serve"): ("webgrove.envs.shop.server", "ShopServeConfig", "run_shop_serve",
                        "serve the shop on 127.0.0.1 to use in a browser (the purchase page shows the reward)"),
}


def _field_type(tp: Any) -> tuple[Any, bool]:
    """(base type, is_list) from an annotation like `int`, `str | None` or `list[str]`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _field_type(args[0])
    if origin is list:
        return typing.get_args(tp)[0], True
    return tp, False


def add_dataclass_arguments(parser: argparse.ArgumentParser, config_cls: type) -> None:
    """One `--flag` per dataclass field; fields with metadata positional=True are positional."""
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        tp, is_list = _field_type(hints[f.name])
        help_text = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        kwargs: dict[str, Any] = {"help": help_text}
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
        name = f.name.replace("_", "-")
        if f.metadata.get("positional"):
            parser.add_argument(f.name, type=tp, **kwargs)
            continue
        flags = [f"--{name}"] + list(f.metadata.get("aliases", []))
        if tp is bool:
            parser.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=default, **kwargs)
            continue
        if is_list:
            kwargs["nargs"] = "+"
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
            if help_text and default not in (None, "", []):
                kwargs["help"] = f"{help_text} (default: {default})"
        parser.add_argument(*flags, dest=f.name, type=tp, **kwargs)


def _load(words: tuple[str, ...]) -> tuple[type, Any]:
    module_name, config_name, run_name, _ = COMMANDS[words]
    module = importlib.import_module(module_name)
    return getattr(module, config_name), getattr(module, run_name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="webgrove",
        description="Train web agents that improve themselves: envs, search, training.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for words, (_, _, _, help_text) in COMMANDS.items():
        if len(words) == 1:
            sub.add_parser(words[0], help=help_text, add_help=False)
        else:
            if words[0] not in groups:
                group = sub.add_parser(words[0], help=f"{words[0]} commands")
                groups[words[0]] = group.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
            groups[words[0]].add_parser(words[1], help=help_text, add_help=False)
    return parser


def command_parser(words: tuple[str, ...]) -> argparse.ArgumentParser:
    config_cls, _ = _load(words)
    doc = (config_cls.__doc__ or "").strip()
    parser = argparse.ArgumentParser(
        prog="webgrove " + " ".join(words), description=COMMANDS[words][3],
        epilog=doc if doc and not doc.startswith(config_cls.__name__ + "(") else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_arguments(parser, config_cls)
    return parser


def parse_config(words: tuple[str, ...], argv: list[str]) -> Any:
    config_cls, _ = _load(words)
    args = command_parser(words).parse_args(argv)
    return config_cls(**vars(args))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    words: tuple[str, ...] | None = None
    for n in (2, 1):
        if tuple(argv[:n]) in COMMANDS:
            words = tuple(argv[:n])
            break
    if words is None:
        build_parser().parse_args(argv or ["--help"])
        return 2
    config = parse_config(words, argv[len(words):])
    _, run = _load(words)
    result = run(config)
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
