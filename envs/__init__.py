"""webgrove environments, registered with Gymnasium under the `webgrove/` namespace.

Registration imports nothing heavy: entry points are strings, resolved by
`gymnasium.make`. Browser ids need the `browser` extra (Playwright) only when made.
"""
from gymnasium.envs.registration import register, registry

from webgrove.envs.browser import register_browser_envs


def _register_all() -> None:
    if "webgrove/WebShop-v0" in registry:
        return
    register(
        id="webgrove/WebShop-v0",
        entry_point="webgrove.envs.shop.env:ShopEnv",
        max_episode_steps=15,
    )
    register_browser_envs()


_register_all()
