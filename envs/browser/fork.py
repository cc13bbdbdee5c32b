"""Forking a page of a site webgrove serves itself: restore without replaying.

A task that can copy its server-side state (`save_site(page)` / `load_site(page,
site, ...)`, e.g. `envs/booking/task.py`) lets `BrowserEnv.get_state` record a `Fork`:
that state, the page URL, the form values the page holds and the element with the
focus. `BrowserEnv.set_state` then rebuilds the page with one navigation instead of
replaying every action from the reset.

The env shows refs counted from the episode's first document (`f3e12` is element 12
of the episode's 3rd document, see `axtree.relative_refs`); a fork records the shown
number of its page's document, and the env counts the restored page's refs from there,
so the restored observation reads as the captured one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from webgrove.envs.browser.axtree import first_frame_seq

if TYPE_CHECKING:
    from playwright.sync_api import Page

_FIELDS = "input:not([type=hidden]), select, textarea"
# Form controls whose value differs from the page's default, by position: [index, value]
# for text and selects, [index, checked] for boxes; plus the index of the focused one.
_READ_JS = """(sel) => {
  const els = Array.from(document.querySelectorAll(sel));
  const out = [];
  els.forEach((el, i) => {
    if (el.type === 'checkbox' || el.type === 'radio') {
      if (el.checked !== el.defaultChecked) out.push([i, el.checked]);
    } else if (el.tagName === 'SELECT') {
      const d = Array.from(el.options).findIndex(o => o.defaultSelected);
      if (el.selectedIndex !== (d < 0 ? 0 : d)) out.push([i, el.value]);
    } else if (el.value !== el.defaultValue) {
      out.push([i, el.value]);
    }
  });
  return [out, els.indexOf(document.activeElement)];
}"""
_WRITE_JS = """([sel, fields, active]) => {
  const els = document.querySelectorAll(sel);
  for (const [i, v] of fields) {
    const el = els[i];
    if (!el) return false;
    if (typeof v === 'boolean') el.checked = v; else el.value = v;
  }
  if (active >= 0 && els[active]) els[active].focus();
  return true;
}"""


@dataclass(frozen=True)
class Fork:
    """A page of a self-served site, restorable with one navigation.

    Attributes:
        site: the task's copy of its server-side state (plain data).
        url: the page's URL.
        fields: [index, value] of the form controls changed on the page.
        active: index of the focused form control, -1 for none.
        frame_seq: the shown document number of the page's refs (0: none, see above).
        terminated, reward_info: the episode's end, as it was at capture.
    """

    site: Any
    url: str
    fields: tuple = ()
    active: int = -1
    frame_seq: int = 0
    terminated: bool = False
    reward_info: dict[str, Any] = field(default_factory=dict)


def frame_seq_of(axtree: str) -> int:
    """The shown document number of the page's own refs (its first ref; 0 for none)."""
    return first_frame_seq(axtree) or 0


def capture(page: Page, axtree: str, site: Any, terminated: bool, reward_info: dict[str, Any]) -> Fork:
    fields, active = page.evaluate(_READ_JS, _FIELDS)
    return Fork(site, page.url, tuple(tuple(f) for f in fields), int(active), frame_seq_of(axtree),
                terminated, dict(reward_info))


def rebuild(page: Page, fork: Fork) -> None:
    """Load the fork's URL in a fresh page, at the captured ref prefix, with its form values.

    Raises RuntimeError when the page has fewer form controls than the fork recorded.
    """
    page.goto(fork.url, wait_until="domcontentloaded")
    if (fork.fields or fork.active >= 0) and not page.evaluate(_WRITE_JS, [_FIELDS, list(fork.fields), fork.active]):
        raise RuntimeError("the restored page has fewer form controls than the fork recorded")
