import pytest

from webgrove.agents.critics import LexicalCritic, LLMCritic
from webgrove.agents.hf import HFPolicy
from webgrove.agents.openai_api import OpenAIPolicy
from webgrove.agents.scripted import OraclePolicy, RandomPolicy, RuleOptionsPolicy, RulePolicy
from webgrove.agents.specs import make_critic, make_policy


def test_scripted_policies():
    assert isinstance(make_policy("rule"), RulePolicy)
    assert isinstance(make_policy("random"), RandomPolicy)
    assert isinstance(make_policy("rule-options"), RuleOptionsPolicy)
    env = object()
    oracle = make_policy("oracle", env=env)
    assert isinstance(oracle, OraclePolicy) and oracle.env is env
    with pytest.raises(ValueError, match="needs the env"):
        make_policy("oracle")
    with pytest.raises(ValueError, match="takes no options.*temperature"):
        make_policy("rule", temperature=0.5)


def test_model_directory_policy(tiny_model_dir):
    policy = make_policy(str(tiny_model_dir), temperature=0.0, device="cpu")
    assert isinstance(policy, HFPolicy) and policy.temperature == 0.0


def test_openai_policy():
    policy = make_policy("openai", base_url="http://127.0.0.1:8000/v1", model_name="m", timeout=5)
    assert isinstance(policy, OpenAIPolicy) and policy.timeout == 5
    with pytest.raises(ValueError, match="--base-url"):
        make_policy("openai", model_name="m")


def test_unknown_policies(tmp_path):
    with pytest.raises(ValueError, match="unknown policy 'greedy'.*oracle, rule, rule-options, random, openai"):
        make_policy("greedy")
    with pytest.raises(ValueError, match="no such directory"):
        make_policy(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="no config.json"):
        make_policy(str(tmp_path))


def test_critics(hf_policy):
    assert make_critic("none") is None
    assert isinstance(make_critic("lexical"), LexicalCritic)
    critic = make_critic("self", policy=hf_policy)
    assert isinstance(critic, LLMCritic) and critic.backend is hf_policy
    with pytest.raises(ValueError, match="scripted policy"):
        make_critic("self", policy=RulePolicy())
    with pytest.raises(ValueError, match="no policy"):
        make_critic("self")
    with pytest.raises(ValueError, match="unknown critic 'best'"):
        make_critic("best")
