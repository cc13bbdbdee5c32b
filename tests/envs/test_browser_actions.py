"""The browser action grammar, origins, aria-snapshot reading and dom_text (no browser)."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from webgrove.envs.browser.actions import ActionParseError, BrowserAction, format_action, parse_action
from webgrove.envs.browser.axtree import (absolute_ref, find_ref, first_frame_seq, interactive_refs, parse_axtree,
                                          refs_in, relative_refs)
from webgrove.envs.browser.dom_text import html_to_dom_text
from webgrove.envs.browser.fork import frame_seq_of
from webgrove.envs.browser.origins import file_url, is_allowed, normalize_origins, origin_of


@pytest.mark.parametrize("text, expected", [
    ("click [e12]", BrowserAction("click", ref="e12")),
    ("  click [f1e3]\n", BrowserAction("click", ref="f1e3")),
    ("type [e5] [hello world]", BrowserAction("type", ref="e5", value="hello world")),
    ("type [e5] [hello] [enter]", BrowserAction("type", ref="e5", value="hello", enter=True)),
    ("type [e5] [a] [b]", BrowserAction("type", ref="e5", value="a] [b")),
    ("type [e5] []", BrowserAction("type", ref="e5", value="")),
    ("select [e7] [Large (US 10)]", BrowserAction("select", ref="e7", value="Large (US 10)")),
    ("press [Enter]", BrowserAction("press", value="Enter")),
    ("press [Control+A]", BrowserAction("press", value="Control+A")),
    ("scroll [down]", BrowserAction("scroll", value="down")),
    ("goto [http://127.0.0.1:8080/x?q=a%20b]", BrowserAction("goto", value="http://127.0.0.1:8080/x?q=a%20b")),
    ("back", BrowserAction("back")),
    ("stop [42 dollars]", BrowserAction("stop", value="42 dollars")),
    ("stop", BrowserAction("stop", value="")),
])
def test_parse_valid_actions(text, expected):
    assert parse_action(text) == expected


@pytest.mark.parametrize("text, message", [
    ("", "unknown action"),
    ("jump [e1]", "unknown action 'jump'"),
    ("click e12", "malformed click"),
    ("click [12]", "malformed click"),
    ("click [e12] [e13]", "malformed click"),
    ("click [__import__('os')]", "malformed click"),
    ("type [e5]", "malformed type"),
    ("select [e7] []", "malformed select"),
    ("scroll [left]", "malformed scroll"),
    ("goto [http://a b]", "malformed goto"),
    ("back [now]", "malformed back"),
    ("press []", "malformed press"),
    ("x" * 5000, "longer than"),
])
def test_parse_rejects_malformed_actions(text, message):
    with pytest.raises(ActionParseError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_action(text)


def test_parse_rejects_non_strings():
    with pytest.raises(ActionParseError, match="string"):
        parse_action(None)


def test_action_fields_are_validated():
    with pytest.raises(ActionParseError):
        BrowserAction("click")
    with pytest.raises(ActionParseError):
        BrowserAction("scroll", value="sideways")
    with pytest.raises(ActionParseError):
        BrowserAction("type", ref="e1", value="x] [enter")  # would read back as Enter


_refs = st.from_regex(r"(f[0-9]{1,2})?e[0-9]{1,4}", fullmatch=True)
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_actions = st.one_of(
    st.builds(BrowserAction, st.just("click"), ref=_refs),
    st.builds(BrowserAction, st.just("type"), ref=_refs, value=_text, enter=st.booleans()),
    st.builds(BrowserAction, st.just("select"), ref=_refs, value=_text.filter(bool)),
    st.builds(BrowserAction, st.just("press"), value=st.from_regex(r"[A-Za-z+]{1,12}", fullmatch=True)),
    st.builds(BrowserAction, st.just("scroll"), value=st.sampled_from(["up", "down"])),
    st.builds(BrowserAction, st.just("goto"), value=st.from_regex(r"https?://[a-z0-9.]{1,12}/[^\s]{0,10}", fullmatch=True)),
    st.just(BrowserAction("back")),
    st.builds(BrowserAction, st.just("stop"), value=_text),
)


@given(st.data())
def test_format_then_parse_round_trips(data):
    try:
        action = data.draw(_actions)
    except ActionParseError:
        return  # a drawn combination the dataclass itself rejects
    assert parse_action(format_action(action)) == action
    assert str(action) == format_action(action)


@given(st.text(max_size=60))
def test_parser_never_raises_anything_but_parse_errors(text):
    try:
        parse_action(text)
    except ActionParseError:
        pass


def test_origins():
    assert origin_of("http://127.0.0.1:8080/a/b?x=1") == "http://127.0.0.1:8080"
    assert origin_of("HTTPS://Example.com:443/") == "https://example.com"
    assert origin_of("file:///tmp/x.html") == "file:///tmp/x.html"  # a file's own URL, never the bare scheme
    for whole in ("file:///", "file:///tmp/.."):
        with pytest.raises(ValueError, match="whole"):
            origin_of(whole)
    with pytest.raises(ValueError):
        origin_of("file://")
    with pytest.raises(ValueError, match="whole"):
        file_url("/")
    assert file_url("/tmp/pages/") == "file:///tmp/pages/"
    with pytest.raises(ValueError):
        origin_of("/relative/path")
    allowed = normalize_origins(["http://127.0.0.1:8080/shop"])
    assert allowed == ("http://127.0.0.1:8080",)
    assert is_allowed("http://127.0.0.1:8080/item?x=1", allowed)
    assert not is_allowed("http://127.0.0.1:8081/", allowed)
    assert not is_allowed("https://example.com/", allowed)
    assert is_allowed("data:text/plain,hi", allowed)
    assert is_allowed("ws://127.0.0.1:8080/socket", allowed)  # a WebSocket counts as its http origin
    assert not is_allowed("ws://127.0.0.1:8081/socket", allowed)
    assert not is_allowed("file:///etc/passwd", allowed)
    with pytest.raises(TypeError):
        normalize_origins("http://127.0.0.1:8080")
    with pytest.raises(ValueError, match="explicitly"):
        normalize_origins(None)


@pytest.mark.parametrize("entry", ["file://", "file:///", "file:///tmp/../", "FILE:///"])
def test_the_whole_filesystem_is_refused(entry):
    with pytest.raises(ValueError, match="every file on this machine"):
        normalize_origins([entry])


@pytest.mark.parametrize("entry", ["file://", "file:///", "FILE:///"])
def test_an_unnormalized_whole_filesystem_entry_opens_nothing(entry):
    """Even a list that skipped `normalize_origins`: no file is allowed, no request skips the
    route handler, and the folder list refuses the entry."""
    from webgrove.envs.browser.env import _routed_urls
    from webgrove.envs.browser.origins import allowed_folders

    assert not is_allowed("file:///etc/passwd", (entry,))
    with pytest.raises(ValueError, match="every file on this machine"):
        allowed_folders((entry,))
    with pytest.raises(ValueError, match="every file on this machine"):
        _routed_urls((entry,))


def test_only_symlink_free_allowed_folders_skip_the_route_handler(tmp_path):
    from webgrove.envs.browser.env import _routed_urls

    (tmp_path / "site").mkdir()
    routed = _routed_urls(normalize_origins([(tmp_path / "site").as_uri() + "/"]))
    assert not routed.match((tmp_path / "site" / "page.html").as_uri())
    for url in [(tmp_path / "secret.txt").as_uri(), f"file://{tmp_path}/site/%2e%2e/secret.txt",
                (tmp_path / "site").as_uri() + "/../secret.txt", "http://127.0.0.1:1/"]:
        assert routed.match(url), url


def test_file_entries_allow_one_file_or_one_folder(tmp_path):
    (tmp_path / "site").mkdir()
    page = tmp_path / "site" / "page.html"
    page.write_text("hi")
    (tmp_path / "secret.txt").write_text("no")
    folder = normalize_origins([(tmp_path / "site").as_uri() + "/"])
    assert is_allowed(page.as_uri(), folder)
    assert is_allowed((tmp_path / "site" / "deeper" / "x.js").as_uri(), folder)
    assert not is_allowed((tmp_path / "secret.txt").as_uri(), folder)
    assert not is_allowed(page.as_uri() + "/../../secret.txt", folder)
    assert not is_allowed(f"file://{tmp_path}/site/%2e%2e/secret.txt", folder)
    assert not is_allowed((tmp_path / "site2" / "x").as_uri(), folder)  # a sibling with the same prefix
    (tmp_path / "site" / "link").symlink_to(tmp_path / "secret.txt")
    assert not is_allowed((tmp_path / "site" / "link").as_uri(), folder)
    one = normalize_origins([page.as_uri()])
    assert is_allowed(page.as_uri(), one)
    assert not is_allowed((tmp_path / "site" / "other.html").as_uri(), one)


SNAPSHOT = """- generic [active] [ref=e1]:
  - 'button "Say \\"hi\\": now" [ref=e2]'
  - 'button "it''s #1 - [x] {y}" [ref=e3]'
  - link "Next >" [ref=e4] [cursor=pointer]:
    - /url: "#x"
  - text: clicky
  - textbox [ref=e6]: "typed: yes"
  - combobox [ref=e7]:
    - option "a"
    - 'option "b: c" [selected]'
  - checkbox "Lc" [checked] [ref=e8]
  - 'heading "Title: x" [level=1] [ref=e9]'
  - iframe [ref=e11]:
    - button "inner" [ref=f1e2]
"""


def test_parse_axtree_reads_yaml_quoting_names_values_and_attributes():
    nodes = {n.ref: n for n in parse_axtree(SNAPSHOT) if n.ref}
    assert nodes["e2"].name == 'Say "hi": now'
    assert nodes["e3"].name == "it's #1 - [x] {y}"
    assert nodes["e6"].value == "typed: yes"
    assert nodes["e8"].attrs == {"checked": ""} and nodes["e8"].name == "Lc"
    assert nodes["e9"].attrs == {"level": "1"}
    assert nodes["f1e2"].depth == 2
    assert refs_in(SNAPSHOT) == {"e1", "e2", "e3", "e4", "e6", "e7", "e8", "e9", "e11", "f1e2"}


def test_interactive_refs_and_find_ref():
    assert interactive_refs(SNAPSHOT) == ["e2", "e3", "e4", "e6", "e7", "e8", "f1e2"]
    assert find_ref(SNAPSHOT, "button", "it's #1 - [x] {y}") == "e3"
    assert find_ref(SNAPSHOT, "button", nth=2) == "f1e2"
    assert find_ref(SNAPSHOT, ("link", "button"), "Next >") == "e4"
    assert find_ref(SNAPSHOT, "button", "missing") is None


def test_dom_text_keeps_visible_text_and_controls():
    html = """<html><head><title>t</title><style>p{}</style></head><body>
      <h1>Shop</h1><script>var secret = 1;</script>
      <div style="display: none">hidden text</div><p hidden>also hidden</p>
      <form><input name="q" value="red shoes" placeholder="Search"><input type="hidden" name="s" value="x">
      <input type="checkbox" name="c" checked><button>Search</button></form>
      <a href="/next">Next &gt;</a> <select name="size"><option>S</option><option selected>M</option></select>
      <textarea name="t">note</textarea><!-- a comment --></body></html>"""
    text = html_to_dom_text(html)
    assert text.splitlines()[0] == "Shop"
    assert "[textbox name=q placeholder='Search'] red shoes" in text
    assert "[checkbox name=c checked]" in text
    assert "[button] Search" in text
    assert "[link] Next >" in text
    assert "[select name=size] S | *M*" in text
    assert "[textbox name=t] note" in text
    for absent in ("secret", "hidden text", "also hidden", "a comment", "name=s]"):
        assert absent not in text


def test_refs_are_shown_relative_to_the_episodes_first_document():
    raw = '- generic [ref=f7e1]:\n  - button "Go" [ref=f7e4]\n  - iframe [ref=f7e5]:\n    - link "In" [ref=f8e2]'
    assert first_frame_seq(raw) == 7 and first_frame_seq("- text: none") is None
    shown = relative_refs(raw, 7)
    assert shown == '- generic [ref=e1]:\n  - button "Go" [ref=e4]\n  - iframe [ref=e5]:\n    - link "In" [ref=f1e2]'
    assert sorted(absolute_ref(r, 7) for r in refs_in(shown)) == ["f7e1", "f7e4", "f7e5", "f8e2"]
    assert relative_refs(raw, 0) == raw and absolute_ref("f3e2", 0) == "f3e2"
    assert relative_refs(raw, 5).count("[ref=f2e") == 3  # a page restored two documents in
    # A fork records the page's own document number, not an iframe's further down.
    assert frame_seq_of(shown) == 0 and frame_seq_of(relative_refs(raw, 5)) == 2
