from hypothesis import given, settings
from hypothesis import strategies as st

from webgrove.agents.base import StepContext
from webgrove.agents.prompts import (ACTION_CUE, CRITIC_CUE, MAX_OBSERVATION_CHARS, action_completion, clean_query,
                            critic_completion, critic_prompt, format_actions, format_history, parse_action,
                            parse_critic_answer, policy_prompt, search_actions, search_query,
                            strip_instruction,
                            truncate_middle)


def test_policy_prompt_layout(item_ctx):
    GOAL, ITEM_ACTIONS = item_ctx.goal, item_ctx.available_actions
    prompt = policy_prompt(item_ctx)
    lines = prompt.split("\n")
    assert lines[0] == f"Goal: {GOAL}"
    assert lines[1].startswith("Page: Back to Search [SEP] < Prev")
    assert lines[2] == "Actions: " + " | ".join(ITEM_ACTIONS)
    assert lines[3] == "History: search[red cotton shirt] > click[b000syn042]"
    assert lines[-1] == ACTION_CUE and prompt.endswith("Action:")
    assert prompt.count(GOAL) == 1  # the page's instruction is not repeated


def test_policy_prompt_is_deterministic_and_bounded():
    GOAL = "i need a red shirt"
    long_obs = f"Instruction: [SEP] {GOAL} [SEP] " + " [SEP] ".join(f"item {i} title words" for i in range(500))
    ctx = StepContext(GOAL, long_obs, [f"click[item {i}]" for i in range(200)], [f"click[x{i}]" for i in range(30)])
    a, b = policy_prompt(ctx), policy_prompt(ctx)
    assert a == b
    page = a.split("\n")[1]
    assert len(page) <= len("Page: ") + MAX_OBSERVATION_CHARS
    assert page.startswith("Page: item 0 title words") and page.endswith("item 499 title words")
    assert a.split("\n")[3].startswith("History: ... > click[x26]")
    assert a.split("\n")[2].endswith(" | ...")


def test_action_completion_follows_the_cue():
    assert action_completion("click[buy now]") == " click[buy now]"
    assert action_completion("  search[red shirt] ") == " search[red shirt]"


@given(st.text(max_size=3000), st.integers(min_value=10, max_value=2000))
@settings(max_examples=200, deadline=None)
def test_truncate_middle(text, budget):
    out = truncate_middle(text, budget)
    assert len(out) <= max(budget, len(" ... "))
    if len(text) <= budget:
        assert out == text
    else:
        head, _, tail = out.partition(" ... ")
        assert text.startswith(head) and text.endswith(tail)
        assert len(head) >= len(tail)


def test_strip_instruction_only_strips_the_goal(item_ctx):
    GOAL, ITEM_OBS = item_ctx.goal, item_ctx.observation
    assert strip_instruction(ITEM_OBS, GOAL).startswith("Back to Search [SEP]")
    assert strip_instruction(ITEM_OBS, "another goal") == ITEM_OBS
    assert strip_instruction(f"WebShop [SEP] Instruction: [SEP] {GOAL} [SEP] Search", GOAL) == "WebShop [SEP] Search"


def test_history_and_actions_formats():
    assert format_history([]) == "none"
    assert format_history(["a", "b"]) == "a > b"
    assert format_history(list("abcdef"), max_history=2) == "... > e > f"
    assert format_actions(["click[a]", "click[b]"], max_chars=100) == "click[a] | click[b]"
    assert format_actions(["click[aaaa]", "click[bbbb]", "click[c]"], max_chars=20) == "click[aaaa] | ..."


def test_parse_action_round_trip(item_ctx):
    ITEM_ACTIONS = item_ctx.available_actions
    for a in ITEM_ACTIONS:
        assert parse_action(action_completion(a), ITEM_ACTIONS) == a
        assert parse_action(action_completion(a).upper() + "\nmore text", ITEM_ACTIONS) == a
    assert parse_action(" click[huge]", ITEM_ACTIONS) is None
    assert parse_action(" I would click the shirt", ITEM_ACTIONS) is None
    assert parse_action(" search[red shirt]", ITEM_ACTIONS) is None  # no search bar here
    assert parse_action(" search[ red shirt ] trailing", ["search[...]"]) == "search[red shirt]"
    assert parse_action(" search[]", ["search[...]"]) is None


def test_search_query_and_clean_query():
    assert search_query("search[red shirt]") == "red shirt"
    assert search_query("click[red]") is None
    assert clean_query(" red\x07 shirt\ufffd [big]] rest") == "red shirt big"
    assert clean_query("a\nb") == "a"
    assert search_actions(["red shirt", " red  shirt]", "", "blue\x00"]) == ["search[red shirt]", "search[blue]"]
    assert search_actions(["", "]"]) == ["search[]"]  # something to propose, which the env rejects


def test_critic_prompt_and_answers_round_trip(item_ctx):
    cands = ["click[large]", "click[red]", "click[buy now]"]
    prompt = critic_prompt(item_ctx, cands)
    assert prompt.endswith("\n1. click[large]\n2. click[red]\n3. click[buy now]\n" + CRITIC_CUE)
    assert prompt.startswith(f"Goal: {item_ctx.goal}\n")
    for i in range(len(cands)):
        assert parse_critic_answer(critic_completion(i), cands) == i
    assert parse_critic_answer("(2) because red", cands) == 1
    assert parse_critic_answer("I pick click[buy now].", cands) == 2
    assert parse_critic_answer("the [red] one", cands) == 1
    assert parse_critic_answer(" 7", cands) is None
    assert parse_critic_answer("no idea", cands) is None
