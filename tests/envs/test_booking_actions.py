"""Named actions on the booking site (envs/booking/actions.py), on a hand-written snapshot."""
import pytest

from webgrove.envs.booking.actions import is_named_action, named_actions, to_browser_action

AXTREE = """- generic [ref=e1]:
  - link "Accept all cookies" [ref=e3]
  - combobox "Time" [ref=e7]:
    - option "7:00 pm" [selected]
    - option "7:30 pm"
  - textbox "First name" [ref=e9]
  - button "7:30 pm" [ref=e11]
  - button "7:30 pm" [ref=e12]
  - radio "Outdoor" [ref=e14]
  - link [ref=e15]"""


def test_every_element_gets_a_unique_name_in_page_order():
    assert named_actions(AXTREE, ("Ada",)) == [
        "click[Accept all cookies]", "click[Time: 7:00 pm]", "click[Time: 7:30 pm]",
        "type[First name][Ada]", "click[7:30 pm]", "click[7:30 pm (2)]", "click[Outdoor]", "click[link]"]


@pytest.mark.parametrize("action, browser", [
    ("click[Accept all cookies]", "click [e3]"),
    ("click[Time: 7:30 pm]", "select [e7] [7:30 pm]"),
    ("type[First name][Ada Lovelace]", "type [e9] [Ada Lovelace]"),
    ("click[7:30 pm (2)]", "click [e12]"),
    ("click [e11]", "click [e11]"),  # browser actions pass unchanged
])
def test_named_actions_become_browser_actions(action, browser):
    assert to_browser_action(action, AXTREE) == browser


@pytest.mark.parametrize("action, message", [
    ("click[8:00 pm]", "nothing on this page"),
    ("type[Outdoor][x]", "not a text box"),
    ("click[First name]", "is a text box"),
])
def test_a_name_that_fits_nothing_is_an_error(action, message):
    with pytest.raises(LookupError, match=message):
        to_browser_action(action, AXTREE)


def test_the_vocabulary_is_told_from_browser_actions():
    assert is_named_action("click[7:30 pm]") and is_named_action("type[Phone][415]")
    assert not is_named_action("click [e3]") and not is_named_action("stop [done]")
