"""The offline restaurant-booking site (`webgrove/Booking-v0`): Agent Q's real-world scenario.

actions.py  named actions (`click[7:30 pm]`, `click[Time: 7:30 pm]`, `type[Phone][…]`)
data.py     restaurants and availability, generated from a seed
goals.py    goals and their phrasings; fixed train/test splits
observation.py  the compact observation (the aria snapshot without what no reader acts on)
reward.py   the evaluator, from the server's booking records; the progress signal of reward shaping
pages.py    the HTML of every page (no JavaScript)
server.py   the HTTP site on 127.0.0.1, sessions and their snapshots; `webgrove booking serve`
task.py     the browser task (setup, validate, snapshot/restore for forking)
"""


MAX_EPISODE_STEPS = 40  # the oracle needs 13 to 26 steps


def register_booking_env() -> None:
    """Register `webgrove/Booking-v0` (imports nothing heavy: the task loads when made)."""
    from webgrove.envs.browser.registry import register_browser_task

    register_browser_task("webgrove/Booking-v0", "webgrove.envs.booking.task:BookingTask",
                          max_episode_steps=MAX_EPISODE_STEPS)
