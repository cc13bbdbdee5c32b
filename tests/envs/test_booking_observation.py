"""The booking site's compact observation, its progress signal and the lexical critic's
booking rules, on hand-written pages (no browser)."""
from webgrove.agents.base import StepContext
from webgrove.agents.booking_scripted import typed_values
from webgrove.agents.critics import LexicalCritic, normalize_values
from webgrove.envs.booking.actions import current_values, element_names, named_actions
from webgrove.envs.booking.goals import split_goals
from webgrove.envs.booking.observation import compact_axtree, fit
from webgrove.envs.booking.reward import booking_progress
from webgrove.envs.booking.server import BookingSite

HOME = """- generic [active] [ref=e1]:
  - banner [ref=e2]:
    - link "TableFinder" [ref=e3] [cursor=pointer]:
      - /url: /
  - main [ref=e6]:
    - heading "Find a table" [level=1] [ref=e7]
    - search "Find a table" [ref=e8]:
      - generic [ref=e9]:
        - text: Restaurant or cuisine
        - textbox "Restaurant or cuisine" [ref=e10]
      - paragraph [ref=e13]:
        - text: "Date: Monday, 2 March 2026"
        - button "Change date" [ref=e14]
      - generic [ref=e15]:
        - text: Time
        - combobox "Time" [ref=e16]:
""" + "".join(f'          - option "{h}:{m} pm"{" [selected]" if (h, m) == (7, "00") else ""}\n'
              for h in (5, 6, 7) for m in ("00", "15", "30", "45")) + """      - button "Find a table" [ref=e19]
    - region "Choose a date" [ref=e20]:
      - table "March 2026" [ref=e21]:
        - row [ref=e22]:
          - gridcell "1" [disabled] [ref=e23]
          - gridcell [ref=e24]:
            - link "Monday, 2 March 2026" [ref=e25] [cursor=pointer]:
              - /url: /?date=2026-03-02
          - gridcell [ref=e26]:
            - link "Friday, 20 March 2026" [ref=e27] [cursor=pointer]:
              - /url: /?date=2026-03-20"""


def test_compact_tree_keeps_what_agents_act_on_and_drops_the_rest():
    compact = compact_axtree(HOME)
    assert len(compact) < len(HOME) / 2
    assert "/url:" not in compact and "cursor=pointer" not in compact and "generic" not in compact
    assert "- text: Time\n" not in compact and "- text: Restaurant or cuisine" not in compact  # labels
    assert '- option "7:00 pm" [selected]' in compact and '"5:15 pm"' not in compact
    assert "- text: 11 more options" in compact
    assert "- text: bookable days Monday, 2 March 2026 to Friday, 20 March 2026" in compact
    # the same names, refs and values for what is shown; the selected option still reads
    full_names = {n: node.ref for n, node, _ in element_names(HOME)}
    for name, node, option in element_names(compact):
        assert full_names[name] == node.ref
    assert current_values(compact)["Time"] == current_values(HOME)["Time"] == "7:00 pm"
    assert compact_axtree(HOME) == compact  # deterministic


def test_fit_drops_long_text_first_then_the_middle():
    lines = ["- heading \"A\" [level=1] [ref=e1]", "- text: " + "x" * 300] + [f"- link \"L{i}\" [ref=e{i}]" for i in range(40)]
    out = fit(lines, 400)
    assert len(out) <= 400 and "x" * 50 not in out
    assert out.startswith('- heading "A"') and out.endswith('- link "L39" [ref=e39]') and "lines not shown" in out
    assert fit(lines[:3], 1000) == "\n".join(lines[:3])


def test_progress_is_the_share_of_fields_the_booking_in_progress_has_right():
    site = BookingSite()
    goal = next(g for g in split_goals("test") if g.kind == "specified" and not (g.seating or g.occasion or g.request))
    rid, name = goal.restaurant_ids[0], site.by_id[goal.restaurant_ids[0]].name
    names = {rid: name}
    slot = {"date": goal.date, "time": f"{goal.time // 60:02d}:{goal.time % 60:02d}", "party": str(goal.party_size)}
    person = {"first_name": goal.first_name, "last_name": goal.last_name, "phone": goal.phone, "email": goal.email}
    assert booking_progress(goal, "/", {}, {}, {}, names) == 0.0
    assert booking_progress(goal, "/", {}, {"q": name.lower()}, {}, names) == 1 / 7  # the search names it
    assert booking_progress(goal, f"/r/{rid}", slot, {}, {}, names) == 4 / 7
    assert booking_progress(goal, "/book", {**slot, "rid": rid}, {"first_name": goal.first_name}, {}, names) == 4.5 / 7
    assert booking_progress(goal, "/book/review", {}, {}, {**slot, "rid": rid, **person}, names) == 1.0
    wrong = {**slot, "rid": rid, **person, "phone": "415-555-0000"}
    assert booking_progress(goal, "/book/review", {}, {}, wrong, names) == 6 / 7


def test_values_are_normalised_and_the_critic_reads_booking_pages():
    assert normalize_values("at 5:30pm").split()[1:] == normalize_values("Time: 5:30 pm").split()[1:] == ["t1730"]
    assert normalize_values("17:30").strip() == "t1730"
    for text in ("2026-03-20", "Friday, 20 March 2026", "on Fri, Mar 20", "March 20"):
        assert "d0320" in normalize_values(text).split(), text
    for text in ("for four people", "for a party of 4", "Party size: 4 people", "for 4 guests"):
        assert "p4" in normalize_values(text).split(), text
    goal = ("I need a reservation for 1 person at Iron Anchor Taverna on 2026-03-13 at 5:30pm. "
            "Email: ben.lopez@example.com. phone 415-555-4598.")
    page = compact_axtree(HOME)
    actions = named_actions(HOME, typed_values(goal))
    ctx = StepContext(goal=goal, observation=page, available_actions=actions)
    v = dict(zip(actions, LexicalCritic().rank(ctx, actions)))
    assert v["click[Time: 5:30 pm]"] == 1.0 and v["click[Time: 6:00 pm]"] == 0.0
    assert v["click[Time: 7:00 pm]"] == 0.0  # selected already: a no-op
    assert v["click[Change date]"] == 1.0  # the page does not show the goal's date
    assert v["click[Find a table]"] == 0.3  # a button
    assert v["type[Restaurant or cuisine][Iron Anchor Taverna]"] > v["type[Restaurant or cuisine][415-555-4598]"]
    assert "Iron Anchor Taverna" in typed_values(goal) and "415-555-4598" in typed_values(goal)


def test_a_list_option_named_like_a_date_control_is_not_one():
    page = ('- combobox "Occasion" [ref=e1]:\n  - option "None" [selected]\n  - option "Date night"\n'
            '- button "Change date" [ref=e2]')
    ctx = StepContext(goal="Book it on March 20. Occasion: Birthday.", observation=page, available_actions=[])
    values = LexicalCritic().rank(ctx, ["click[Occasion: Date night]", "click[Occasion: Birthday]", "click[Change date]"])
    assert values == [0.0, 1.0, 1.0]


def _values(goal: str, page: str, actions: list[str], history=()) -> dict[str, float]:
    ctx = StepContext(goal=goal, observation=page, available_actions=actions, history=list(history))
    return dict(zip(actions, LexicalCritic().rank(ctx, actions)))


DETAILS = '- textbox "First name" [ref=e1]\n- textbox "Last name" [ref=e2]\n- textbox "Email" [ref=e3]\n'


def test_an_email_address_is_one_value_so_its_words_do_not_name_other_fields():
    assert normalize_values("use the email hiro.silva@example.com.").split() == ["use", "the", "email",
                                                                                "emhirosilvaexamplecom", "."]
    goal = "Book it. use the email hiro.silva@example.com. Name: Hiro Silva."
    actions = ["type[Email][Hiro]", "type[First name][Hiro]", "type[Email][hiro.silva@example.com]"]
    v = _values(goal, DETAILS, actions)
    assert v["type[First name][Hiro]"] == 1.0 and v["type[Email][hiro.silva@example.com]"] == 1.0
    assert v["type[Email][Hiro]"] < 0.5


SIGN_IN = ('- heading "Sign in" [level=1] [ref=e0]\n- textbox "Email" [ref=e1]\n- textbox "Password" [ref=e2]\n'
           '- button "Sign in" [ref=e3]\n- link "Continue as guest" [ref=e4]\n- link "Join now" [ref=e5]\n')


def test_account_detours_are_worth_nothing_and_a_prompt_is_answered_first():
    goal = "Book a table for 2 at Cedar Oak Grill on March 20 at 7:30 pm. Email: ana.kim@example.com."
    actions = ["click[Sign in]", "click[Join now]", "type[Password][Ana]", "click[Continue as guest]",
               "type[Email][ana.kim@example.com]"]
    v = _values(goal, SIGN_IN, actions)
    assert v["click[Sign in]"] == v["click[Join now]"] == v["type[Password][Ana]"] == 0.0
    assert v["click[Continue as guest]"] == 1.0 and v["type[Email][ana.kim@example.com]"] == 0.5
    # answered once: a repeat within the loop window is no way out
    again = _values(goal, SIGN_IN, actions, history=["click[Continue as guest]"])
    assert again["click[Continue as guest]"] < 1.0
    # a goal that asks for the account gets it
    asked = _values(goal + " Sign in to my account first.", SIGN_IN, actions)
    assert asked["click[Sign in]"] > 0.0


def _results(rows: list[tuple[str, str, list[str]]]) -> str:
    lines = ['- list "Results" [ref=r0]:']
    for i, (name, place, times) in enumerate(rows):
        lines += [f'  - listitem [ref=r{i}a]:', f'    - heading [level=2] [ref=r{i}b]:',
                  f'      - link "{name}" [ref=r{i}c] [cursor=pointer]:', f'    - paragraph [ref=r{i}d]: {place}',
                  f'    - paragraph [ref=r{i}e]:']
        lines += [f'      - link "{t} at {name}" [ref=r{i}t{j}] [cursor=pointer]:' for j, t in enumerate(times)]
    return "\n".join(lines) + '\n- button "Apply filters" [ref=b1]\n'


def test_result_rows_are_valued_by_the_place_the_rating_and_the_time():
    page = _results([("Cedar Oak Grill", "Greek · Russian Hill · $$$ · rated 4.9 (10 reviews)", ["8:15 pm"]),
                     ("Tandoor Fig", "Indian · Russian Hill · $$ · rated 4.6 (10 reviews)", ["7:45 pm", "8:15 pm"]),
                     ("Spice Row", "Indian · Russian Hill · $ · rated 4.2 (10 reviews)", ["9:30 pm"])])
    names = ["click[Cedar Oak Grill]", "click[Tandoor Fig]", "click[Spice Row]"]
    best = _values("On 20 March at 8:00 pm, for 2: reserve the best-rated Indian restaurant in Russian Hill.",
                   page, names)
    assert best["click[Tandoor Fig]"] > best["click[Spice Row]"] > best["click[Cedar Oak Grill]"]
    times = ["click[7:45 pm at Tandoor Fig]", "click[8:15 pm at Tandoor Fig]", "click[9:30 pm at Spice Row]"]
    earliest = _values("Book the earliest table at or after 8:00 pm for 2 at an Indian place in Russian Hill "
                       "rated at least 4.5 on March 20.", page, times + names)
    assert earliest["click[8:15 pm at Tandoor Fig]"] > earliest["click[7:45 pm at Tandoor Fig]"]
    assert earliest["click[9:30 pm at Spice Row]"] < earliest["click[7:45 pm at Tandoor Fig]"]  # rated 4.2 < 4.5
    assert earliest["click[Spice Row]"] == 0.2  # below the goal's rating: the place does not count


def test_a_form_is_sent_after_its_fields_are_set():
    goal = "Book a table for 2 at an Indian place in Russian Hill on March 20."
    page = _results([]) + '- combobox "Cuisine" [ref=c1]:\n  - option "Any" [selected]\n  - option "Indian"\n'
    actions = ["click[Apply filters]", "click[Cuisine: Indian]"]
    before = _values(goal, page, actions)
    assert before["click[Cuisine: Indian]"] == 1.0 and before["click[Apply filters]"] == 0.3
    after = _values(goal, page, actions, history=["click[Cuisine: Indian]"])
    assert after["click[Apply filters]"] == 0.9


def test_a_calendar_naming_the_goals_date_does_not_show_it_chosen():
    goal = "Book a table for 2 at Cedar Oak Grill on March 20 at 7:30 pm."
    v = _values(goal, HOME, ["click[Change date]", "click[Friday, 20 March 2026]"])
    assert v["click[Change date]"] == 1.0  # the page says 2 March; the 20th is only a link
    chosen = HOME.replace("Date: Monday, 2 March 2026", "Date: Friday, 20 March 2026")
    assert _values(goal, chosen, ["click[Change date]"])["click[Change date]"] == 0.0
