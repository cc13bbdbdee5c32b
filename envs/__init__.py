"""webgrove environments, registered with Gymnasium under the `webgrove/` namespace.

Registration imports nothing heavy: entry points are strings, resolved by
`gymnasium.make`. Browser ids need the `browser` extra (Playwright) only when made.
"""
from gymnasium.envs.registration import register, registry

from webgrove.envs.booking import register_booking_env
from webgrove.envs.browser import register_browser_envs
from webgrove.envs.make import SHOP_ATTEMPT_IDS, SHOP_IDS

SUCCESS_REWARD = 1.0  # the reward of a solved task (WebShop's full match; MiniWoB and Browser-v0 alike)


def is_success(reward: float) -> bool:
    """Whether an episode's return counts as a success: the full reward, up to float rounding."""
    return float(reward) >= SUCCESS_REWARD - 1e-9


def _register_all() -> None:
    if "webgrove/WebShop-v0" in registry:
        return
    register(
        id="webgrove/WebShop-v0",
        entry_point="webgrove.envs.shop.env:ShopEnv",
        max_episode_steps=15,
    )
    register_browser_envs()
    register_booking_env()
    for base, variant in zip(SHOP_IDS, SHOP_ATTEMPT_IDS):  # up to T attempts with feedback (RISE)
        register(id=variant, entry_point="webgrove.envs.multi_attempt:attempts_env", kwargs={"env_id": base})


_register_all()
