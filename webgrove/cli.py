"""The `webgrove` command.

Each subcommand is a config dataclass (fields carry their `help` in metadata) and a
run function taking that config, both living in the module that owns the work. A
config composes shared argument groups (`EnvArgs`, `PolicyArgs`, `SearchArgs`,
`OutputArgs`), mixed in or nested; this file flattens them into one flag per field,
imports a command's module only when that command runs (so `webgrove --help` stays
fast), and is the only place that prints a command's result.

Errors: a user error (`webgrove.envs.errors.UsageError`, a bad flag value, a missing
file, a port in use, an unreachable server, a malformed data or tree file) prints one
line on stderr and exits 2; anything else is a bug and keeps its traceback. The global
`--debug` flag shows the traceback of every error.
"""
from __future__ import annotations

import argparse
import dataclasses
import errno
import importlib
import inspect
import logging
import sys
import types
import typing
from typing import Any, Callable

# (words) -> ("module", "ConfigClass", "run_function", one-line help)
COMMANDS: dict[tuple[str, ...], tuple[str, str, str, str]] = {
    ("rollout",): ("webgrove.search.rollout", "RolloutConfig", "rollout",
                   "run a policy (greedily or with MCTS at inference) on consecutive goals: success rate, score"),
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
    ("improve",): ("webgrove.training.loop", "ImproveConfig", "run_improve_command",
                   "self-improvement loop: MCTS trees -> Agent Q pairs -> DPO -> held-out evaluation, N times"),
    ("demo",): ("webgrove.training.demo", "DemoConfig", "run_demo",
                "the whole story on a CPU: init-model, behaviour cloning, baselines and Agent Q, evaluation"),
    ("train", "sft"): ("webgrove.training.sft", "SFTRunConfig", "run_sft",
                       "supervised fine-tuning on prompt/completion rows (loss on completions only)"),
    ("train", "dpo"): ("webgrove.training.dpo", "DPORunConfig", "run_dpo",
                       "off-policy DPO on preference pairs (TRL + PEFT LoRA; reference log-probs from the trees)"),
    ("train", "critic"): ("webgrove.training.critic_train", "CriticRunConfig", "run_critic",
                          "the learned self-critic: the policy's model trained on earlier trees' Q-values"),
    ("train", "merge"): ("webgrove.training.sft", "MergeConfig", "run_merge",
                         "merge a LoRA adapter into its base model as a plain model directory"),
    ("shop", "serve"): ("webgrove.envs.shop.server", "ShopServeConfig", "run_shop_serve",
                        "serve the shop on 127.0.0.1 to use in a browser (the purchase page shows the reward)"),
    ("shop", "build-catalog"): ("webgrove.envs.shop.build_catalog", "BuildCatalogConfig", "run_build_catalog",
                                "build (or check) a shop catalog's memory-mapped store before workers open it"),
    ("booking", "serve"): ("webgrove.envs.booking.server", "BookingServeConfig", "run_booking_serve",
                           "serve the restaurant-booking site on 127.0.0.1 to use in a browser (/new?goal_id=N)"),
    ("rise", "collect"): ("webgrove.training.rise", "RiseCollectConfig", "run_rise_collect",
                          "RISE data: multi-attempt rollouts with feedback and improved next attempts"),
    ("rise", "rows"): ("webgrove.training.rise", "RiseRowsConfig", "run_rise_rows",
                       "RISE rows: filter candidates (all/better/best/successful), weight exp(r/tau)"),
    ("rise", "train"): ("webgrove.training.weighted_sft", "WeightedSFTConfig", "run_weighted_sft",
                        "reward-weighted SFT on prompt/completion/weight rows"),
    ("rise", "eval"): ("webgrove.training.rise_eval", "RiseEvalConfig", "run_rise_eval",
                       "success by attempt t=1..T: sequential with feedback vs parallel, with/without oracle"),
    ("rise", "improve"): ("webgrove.training.rise", "RiseImproveConfig", "run_rise_improve_command",
                          "RISE loop: collect -> rows -> weighted SFT -> success by attempt, N times (resumable)"),
}

# Commands that are gone, and what to type instead (`eval` merged into `rollout`).
RENAMED = {"eval": "rollout --policy MODEL_DIR"}

# Exceptions that mean "the user's input or machine", by qualified class name (anywhere in
# the class's MRO), so that mapping them imports nothing heavy.
USER_ERRORS = {
    "webgrove.envs.errors.UsageError",
    "webgrove.envs.shop.webshop_data.WebShopDataError",  # a malformed data file: file, record, field
    "webgrove.search.tree.TreeFormatError",  # a malformed tree file
    "webgrove.agents.openai_api.OpenAIServerError",  # --base-url unreachable or failing
    "webgrove.agents.openai_api.LogprobsUnsupported",
    "webgrove.envs.browser.chromium.BrowserLaunchError",  # no Chromium
    "builtins.OSError",  # missing files, permissions, a port in use, refused connections
}
# Exceptions that end a command that did part of its work: one line, exit 1.
PARTIAL_FAILURES = {"webgrove.search.collect.CollectError"}


class UsageExit(Exception):
    """Raised by the argument parsers instead of printing usage and exiting."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        raise UsageExit(f"{message} (see {self.prog} --help)")


# ---------------------------------------------------------------------------------------
# Dataclasses -> flags


def _field_type(tp: Any) -> tuple[Any, bool]:
    """(base type, is_list) from an annotation like `int`, `str | None` or `list[str]`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _field_type(args[0])
    if origin is list:
        return typing.get_args(tp)[0], True
    return tp, False


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _group_title(config_cls: type, name: str) -> str | None:
    """The argument group that declares field `name` (None: the command's own field)."""
    for cls in config_cls.__mro__[1:]:
        if name in vars(cls).get("__annotations__", {}):
            return cls.__name__
    return None


def _add_flag(parser, f: dataclasses.Field, tp: Any, default: Any) -> None:
    tp, is_list = _field_type(tp)
    help_text = f.metadata.get("help", "")
    kwargs: dict[str, Any] = {"help": help_text}
    if f.metadata.get("choices"):
        kwargs["choices"] = f.metadata["choices"]
    if f.metadata.get("positional"):
        parser.add_argument(f.name, type=tp, **kwargs)
        return
    flags = [f"--{f.name.replace('_', '-')}"] + list(f.metadata.get("aliases", []))
    if tp is bool:
        parser.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=default, **kwargs)
        return
    if is_list:
        kwargs["nargs"] = "+"
    if default is dataclasses.MISSING:
        kwargs["required"] = True
    else:
        kwargs["default"] = default
        if help_text and default not in (None, "", []):
            kwargs["help"] = f"{help_text} (default: {default})"
    parser.add_argument(*flags, dest=f.name, type=tp, **kwargs)


def add_dataclass_arguments(parser: argparse.ArgumentParser, config_cls: type,
                            defaults: Any = None) -> None:
    """One `--flag` per dataclass field, the command's own fields first, then one help
    section per mixed-in argument group. A field whose type is a dataclass (a nested
    group) is flattened: its fields become flags too. Fields with metadata
    positional=True are positional."""
    hints = typing.get_type_hints(config_cls)
    sections: dict[str | None, Any] = {None: parser}
    order = {cls.__name__: i for i, cls in enumerate(config_cls.__mro__)}  # groups in the order mixed in
    fields = sorted(dataclasses.fields(config_cls), key=lambda f: (
        _group_title(config_cls, f.name) is not None, order.get(_group_title(config_cls, f.name), 0)))
    for f in fields:
        default = getattr(defaults, f.name) if defaults is not None else _default(f)
        if dataclasses.is_dataclass(hints[f.name]):  # a nested group
            add_dataclass_arguments(parser, hints[f.name], None if default is dataclasses.MISSING else default)
            continue
        title = _group_title(config_cls, f.name)
        if title not in sections:
            sections[title] = parser.add_argument_group(title)
        _add_flag(sections[title], f, hints[f.name], default)


def build_config(config_cls: type, values: dict[str, Any]) -> Any:
    """`config_cls` from flat flag values, nested groups rebuilt from the same values."""
    hints = typing.get_type_hints(config_cls)
    kwargs = {}
    for f in dataclasses.fields(config_cls):
        if dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = build_config(hints[f.name], values)
        elif f.name in values:
            kwargs[f.name] = values[f.name]
    return config_cls(**kwargs)


def _load(words: tuple[str, ...]) -> tuple[type, Callable[[Any], Any]]:
    module_name, config_name, run_name, _ = COMMANDS[words]
    module = importlib.import_module(module_name)
    return getattr(module, config_name), getattr(module, run_name)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="webgrove",
                     description="Train web agents that improve themselves: envs, search, training.",
                     epilog="Add --debug (anywhere) to see the traceback of an error.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of every error")
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
    doc = inspect.cleandoc(config_cls.__doc__ or "")
    parser = _Parser(
        prog="webgrove " + " ".join(words), description=COMMANDS[words][3],
        epilog=doc if doc and not doc.startswith(config_cls.__name__ + "(") else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_arguments(parser, config_cls)
    return parser


def parse_config(words: tuple[str, ...], argv: list[str]) -> Any:
    """The command's config from its flags.

    Raises:
        UsageExit: a flag is unknown, missing or malformed, or the config rejects a value.
    """
    config_cls, _ = _load(words)
    args = command_parser(words).parse_args(argv)
    try:
        return build_config(config_cls, vars(args))
    except (ValueError, TypeError) as e:  # the config's own validation
        raise UsageExit(str(e)) from e


# ---------------------------------------------------------------------------------------
# Results -> text (the only place a command's result is printed)


def _ci95(s: dict, key: str, fmt: str) -> str:
    ci = s.get(key + "_ci95")
    return f" [95% CI {ci[0]:{fmt}}-{ci[1]:{fmt}}]" if ci else ""


def format_rollout(s: dict) -> str:
    mcts = f" + MCTS ({s['simulations']} simulations, critic {s['critic']})" if s.get("mcts") else ""
    return (f"{s['policy']}{mcts} on {s['env']} ({s['split']}, {s['episodes']} episodes): "
            f"success rate {s['success_rate']:.3f}{_ci95(s, 'success_rate', '.3f')}, "
            f"score {s['score']:.1f}{_ci95(s, 'score', '.1f')}, "
            f"{s['steps_per_second']:.1f} steps/s, {s['seconds']:.1f}s") + _format_attempts(s)


def _format_attempts(s: dict) -> str:
    if not s.get("by_attempt"):
        return ""
    from webgrove.search.attempts import format_retries
    from webgrove.training.rise_eval import format_curves

    retries = f"\nwith oracle, each retry against the attempt before it:\n{format_retries(s['retries'])}" \
        if s.get("retries") else ""
    return (f"\nsuccess rate (%) / score at attempt t = 1..{s['attempts']} (feedback {s['feedback']}):\n"
            + format_curves(s["by_attempt"]) + retries)


def rollout_warnings(s: dict) -> list[str]:
    """What a user should know about a rollout's numbers: actions the env kept rejecting."""
    steps = s.get("mean_steps", 0) * s.get("episodes", 0)
    rejected = s.get("invalid_actions", 0)
    if steps and rejected / steps >= 0.25:
        return [f"warning: the env rejected {rejected} of {round(steps)} actions ({100 * rejected / steps:.0f}%); "
                f"policy {s['policy']!r} may not speak {s['env']}'s action format"]
    return []


def format_collect(summary: dict) -> str:
    from webgrove.search.collect import format_summary

    return format_summary(summary)


FORMATTERS: dict[tuple[str, ...], Callable[[dict], str]] = {("rollout",): format_rollout, ("collect",): format_collect}
WARNINGS: dict[tuple[str, ...], Callable[[dict], list[str]]] = {("rollout",): rollout_warnings}


def print_result(words: tuple[str, ...], result: Any) -> None:
    """A command's result on stdout (warnings on stderr); int or None results print nothing."""
    if not isinstance(result, dict):
        return
    for line in WARNINGS.get(words, lambda r: [])(result):
        print(line, file=sys.stderr)
    if words in FORMATTERS:
        print(FORMATTERS[words](result))


# ---------------------------------------------------------------------------------------
# Errors -> one line


def _qualified_names(exc: BaseException) -> set[str]:
    return {f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__}


def error_line(exc: BaseException) -> str:
    """One line saying what is wrong (and, for common causes, what to do)."""
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return "the port is already in use: choose another --port (--port 0 picks a free one)"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
        text = f"{exc.strerror or text}: {exc.filename}" if exc.filename else text
    return " ".join(text.split())


def exit_code(exc: BaseException) -> int | None:
    """2 for a user error, 1 for a known partial failure, None for a bug (keep the traceback)."""
    names = _qualified_names(exc)
    if isinstance(exc, UsageExit) or names & USER_ERRORS:
        return 2
    if isinstance(exc, OverflowError) and "port" in str(exc):  # socket.bind on a port > 65535
        return 2
    if names & PARTIAL_FAILURES:
        return 1
    return None


def _find_command(argv: list[str]) -> tuple[str, ...]:
    for n in (2, 1):
        if tuple(argv[:n]) in COMMANDS:
            return tuple(argv[:n])
    if not argv:
        raise UsageExit("help")
    subcommands = [w[1] for w in COMMANDS if len(w) == 2 and w[0] == argv[0]]
    if subcommands:
        if argv[1:] in (["-h"], ["--help"]):
            build_parser().parse_args(argv)  # prints the group's help and exits 0
        raise UsageExit(f"`webgrove {argv[0]}` needs one of: {', '.join(subcommands)}")
    if argv[0] in RENAMED:
        raise UsageExit(f"'{argv[0]}' is now `webgrove {RENAMED[argv[0]]}` (see webgrove --help)")
    known = ", ".join(sorted({" ".join(w) for w in COMMANDS}))
    raise UsageExit(f"unknown command {' '.join(argv[:2])!r}; use one of: {known}")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (pytest and notebooks swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def route_library_messages() -> None:
    """Library code reports progress through `logging` (loggers `webgrove.*`), never `print`;
    the command shows those messages on stderr as plain lines and keeps stdout for results."""
    log = logging.getLogger("webgrove")
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    route_library_messages()
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if argv in (["-h"], ["--help"]):
        build_parser().print_help()
        return 0
    prog = "webgrove"
    try:
        words = _find_command(argv)
        prog = "webgrove " + " ".join(words)
        config = parse_config(words, argv[len(words):])
        result = _load(words)[1](config)
    except UsageExit as e:
        if str(e) == "help":
            build_parser().print_help(sys.stderr)
            return 2
        if debug:
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        code = exit_code(e)
        if debug or code is None:
            raise
        print(f"{prog}: error: {error_line(e)}", file=sys.stderr)
        return code
    print_result(words, result)
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
