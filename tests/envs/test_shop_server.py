"""The shop website (envs/shop/server.py): HTTP sessions, and a person's visit in headless Chromium."""
import html
import http.client
from urllib.parse import urlsplit

import pytest

from webgrove.envs.shop.engine import ShopState, get_engine
from webgrove.envs.shop.pages import build_page, to_html
from webgrove.envs.shop.server import SESSION_COOKIE, ShopServeConfig, ShopServer


@pytest.fixture(scope="module")
def server():
    with ShopServer(get_engine(), split="test", seed=0) as s:
        yield s


def get(server, path, sid=None):
    netloc = urlsplit(server.url).netloc
    conn = http.client.HTTPConnection(netloc, timeout=10)
    headers = {"Cookie": f"{SESSION_COOKIE}={sid}"} if sid else {}
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    return resp, body


def test_binds_localhost_on_a_free_port(server):
    assert server.url.startswith("http://127.0.0.1:") and server.port > 0


def test_pages_are_the_renderers_html(server):
    sid = server.new_session(goal_id=4)
    engine, goal = server.engine, server.goals[4]
    resp, body = get(server, "/", sid)
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/html")
    assert body == to_html(build_page(engine, ShopState(), goal), engine, ShopState())
    resp, body = get(server, "/search?q=red+shoes", sid)
    state = engine.step(ShopState(), "search[red shoes]")
    assert body == to_html(build_page(engine, state, goal), engine, state)
    assert server.session(sid).state == state


def test_purchase_records_the_engines_reward_once(server):
    sid = server.new_session(goal_id=0)
    goal = server.goals[0]
    product = server.engine.catalog.product(goal.asin)
    opts = "&".join(f"o.{k}={v}" for k, v in goal.goal_options.items() if v in product.options.get(k, ()))
    resp, body = get(server, f"/buy/{goal.asin}?q=x&page=1&{opts}", sid)
    purchase = server.session(sid).purchase
    assert resp.status == 200 and purchase is not None
    expected = server.engine.purchase(server.session(sid).state, goal)
    assert purchase.reward == expected.reward
    assert "Reward components" in body and "r_type" in body
    get(server, f"/buy/{server.engine.catalog.products[0].asin}?q=x&page=1", sid)
    assert server.session(sid).purchase is purchase  # the first purchase ends the episode


def test_sessions_are_separate_and_bad_urls_are_404(server):
    a, b = server.new_session(goal_id=1), server.new_session(goal_id=2)
    assert a != b
    _, body_a = get(server, "/", a)
    _, body_b = get(server, "/", b)
    assert html.escape(server.goals[1].instruction) in body_a
    assert html.escape(server.goals[2].instruction) in body_b
    resp, body = get(server, "/item/NOSUCHASIN", a)
    assert resp.status == 404 and "no such page" in body
    resp, _ = get(server, "/search?q=x&page=999", a)
    assert resp.status == 404
    server.end_session(a)
    assert server.session(a) is None


def test_a_visit_without_a_session_gets_one(server):
    resp, _ = get(server, "/new?goal_id=3")
    assert resp.status == 303 and resp.getheader("Location") == "/"
    sid = resp.getheader("Set-Cookie").split(";")[0].split("=", 1)[1]
    assert server.session(sid).goal_id == 3
    resp, _ = get(server, "/new?goal_id=100000")
    assert resp.status == 400


def test_serve_config_validates_port():
    with pytest.raises(ValueError, match="port"):
        ShopServeConfig(port=70000)


@pytest.mark.browser
def test_a_person_can_search_and_buy_in_chromium(server, tmp_path):
    from webgrove.envs.browser.chromium import BrowserLaunchError, Chromium, chromium_executable

    try:
        chromium_executable()
    except BrowserLaunchError as e:
        pytest.fail(str(e))  # make test installs Chromium: missing is a setup error
    with Chromium() as chromium:
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(server.url + "new?goal_id=0")
        goal = server.goals[0]
        assert goal.instruction in page.inner_text("#instruction-text")
        page.get_by_label("Search query").fill(goal.instruction)
        page.get_by_role("button", name="Search").click()
        page.wait_for_url("**/search?**")
        links = page.locator("a.product-link")
        assert links.count() == 10
        shot = tmp_path / "results.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000  # a real rendering, not a blank page
        page.get_by_role("link", name=goal.asin).click()
        for name, value in goal.goal_options.items():
            option = page.get_by_role("button", name=value, exact=True)
            if option.count():
                option.first.click()
        page.get_by_role("link", name="Buy Now").click()
        page.wait_for_url("**/buy/**")
        assert "Your score" in page.content()
        assert page.locator("#reward-info").inner_text().count("\n") >= 5
        sid = next(c["value"] for c in context.cookies() if c["name"] == SESSION_COOKIE)
        assert server.session(sid).purchase.reward == 1.0
        context.close()
