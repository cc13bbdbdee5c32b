"""The by-attempt runner's choice of policy per attempt (`later_temperature`)."""
import pytest

from webgrove.agents.base import StepContext
from webgrove.envs.errors import UsageError
from webgrove.search.attempts import AttemptArgs, attempt_actor

EARLIER = [{"attempt": 1, "actions": ["search[shoes]", "click[buy now]"], "reward": 0.5, "success": False,
            "feedback": "failed, reward 0.50: wrong options (want color: red)", "answer": "B03"}]


class Named:
    """A policy that always answers with its name (what `attempt_actor` picked is visible)."""

    def __init__(self, name):
        self.name = name

    def act(self, ctx, rng):
        return self.name


def ctx(attempts):
    return StepContext(goal="g", observation="o", available_actions=["search[...]"], attempts=attempts)


def test_later_policy_acts_once_the_context_holds_earlier_attempts():
    act = attempt_actor(Named("first"), Named("later"), rng=None)
    assert [act(ctx([])), act(ctx(EARLIER)), act(ctx([]))] == ["first", "later", "first"]


def test_without_a_later_policy_the_first_acts_throughout():
    act = attempt_actor(Named("first"), None, rng=None)
    assert [act(ctx([])), act(ctx(EARLIER))] == ["first", "first"]


def test_later_temperature_is_validated():
    assert AttemptArgs(attempts=5, later_temperature=1.0).later_temperature == 1.0
    with pytest.raises(UsageError, match="later-temperature"):
        AttemptArgs(attempts=5, later_temperature=-0.5)
