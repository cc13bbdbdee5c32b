"""Allowed origins hold against every request kind, in real Chromium with two real local servers.

`site` is the allowed origin; `forbidden` is a second server on another port that
records every request it gets: a test passes only if nothing reached it.
"""
import http.server
import threading

import gymnasium as gym
import pytest

import webgrove.envs  # noqa: F401  (registers the ids)
from webgrove.envs.browser.axtree import find_ref

pytestmark = pytest.mark.browser


class _Server:
    """A 127.0.0.1 server answering from a dict of path -> (status, headers, body); logs paths."""

    def __init__(self, routes):
        self.routes, self.seen, self.requests = routes, [], []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers

            def log_message(self, *args):
                return None

            def do_POST(self):
                self.do_GET()

            def do_GET(self):
                server.seen.append(self.path)
                # Like http.server's own handlers, a GET body is left unread.
                length = int(self.headers.get("Content-Length") or 0) if self.command == "POST" else 0
                server.requests.append((self.command, self.path, self.rfile.read(length).decode()))
                status, headers, body = server.routes.get(self.path.split("?")[0], (404, {}, "missing"))
                data = body.format(forbidden=server.other).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v.format(forbidden=server.other))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.other = ""
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


HTML = {"Content-Type": "text/html"}
JS = {"Content-Type": "application/javascript"}
ROUTES = {
    "/": (200, HTML, "<h1>Home</h1><a href='/hop'>Hop</a><a href='/chain'>Chain</a>"
                     "<button onclick=\"window.ws = new WebSocket('{forbidden}'.replace('http', 'ws'))\">Socket</button>"
                     "<button onclick=\"new Worker('/worker.js')\">Worker</button>"
                     "<img src='/img-hop' alt='pic'>"),
    "/hop": (302, {"Location": "{forbidden}stolen"}, ""),
    "/chain": (302, {"Location": "/hop"}, ""),
    "/img-hop": (302, {"Location": "{forbidden}pixel"}, ""),
    "/worker.js": (200, JS, "fetch('{forbidden}from-worker')"),
    "/form": (200, HTML, "<form method='post' action='/post'><input name='who' aria-label='Who' value='ann'>"
                         "<button>Send</button></form>"),
    "/post": (303, {"Location": "/landed"}, ""),
    "/landed": (200, HTML, "<h1>Landed</h1><a href='/form'>Again</a>"),
    "/note": (200, HTML, "<input aria-label='Note'><a href='/hop'>Hop</a>"),
}


@pytest.fixture(scope="module")
def servers():
    site, forbidden = _Server(ROUTES), _Server({})
    site.other = forbidden.url
    yield site, forbidden
    site.close()
    forbidden.close()


@pytest.fixture
def env(servers, chromium):
    site, forbidden = servers
    env = gym.make("webgrove/Browser-v0", start_url=site.url, goal="stay home", browser=chromium)
    yield env
    env.close()
    assert forbidden.seen == [], f"the forbidden origin was reached: {forbidden.seen}"


def click(env, obs, role, name):
    ref = find_ref(obs["axtree"], role, name)
    assert ref is not None, obs["axtree"]
    return env.step(f"click [{ref}]")


def blocked_after(env, obs, info, role, name, wait_ms=0):
    """Every URL blocked from reset through one click (and an optional wait)."""
    blocked = list(info["blocked_requests"])
    obs, _, _, _, info = click(env, obs, role, name)
    blocked += info["blocked_requests"]
    if wait_ms:
        env.unwrapped.page.wait_for_timeout(wait_ms)
        obs, info = env.unwrapped.observe()
        blocked += info["blocked_requests"]
    return obs, blocked


def test_a_redirect_to_a_forbidden_origin_is_blocked_and_reported(env, servers):
    site, forbidden = servers
    obs, info = env.reset(seed=0)
    assert forbidden.url + "pixel" in info["blocked_requests"]  # a subresource's redirect too
    obs, blocked = blocked_after(env, obs, info, "link", "Hop")
    assert forbidden.url + "stolen" in blocked
    assert env.unwrapped.page.url == site.url
    env.unwrapped.page.wait_for_timeout(300)  # no error page commits after the step
    assert env.unwrapped.page.url == site.url and obs["url"] == site.url


def test_a_blocked_navigation_is_a_no_op_that_says_so(env, servers):
    site, forbidden = servers
    env.reset(seed=0)
    obs, _, _, _, info = env.step(f"goto [{site.url}note]")
    ref = find_ref(obs["axtree"], "textbox", "Note")
    obs, _, _, _, info = env.step(f"type [{ref}] [kept]")
    obs, _, _, _, info = click(env, obs, "link", "Hop")
    assert "blocked" in info["error"] and forbidden.url + "stolen" in info["error"]
    assert obs["url"] == site.url + "note" and "kept" in obs["axtree"]  # the same document, as typed
    obs, _, _, _, info = env.step("back")  # no entry was added to the history
    assert obs["url"] == site.url and info["error"] is None


def test_goto_an_allowed_url_that_redirects_out_is_refused(env, servers):
    site, forbidden = servers
    env.reset(seed=0)
    obs, _, _, _, info = env.step(f"goto [{site.url}chain]")
    assert f"navigation to {forbidden.url}stolen blocked" in info["error"]
    assert obs["url"] == site.url


def test_a_redirect_chain_is_checked_hop_by_hop(env, servers):
    site, forbidden = servers
    obs, info = env.reset(seed=0)
    obs, blocked = blocked_after(env, obs, info, "link", "Chain")
    assert forbidden.url + "stolen" in blocked


def test_a_post_answered_by_303_is_followed_once_with_a_get_and_no_body(env, servers):
    site, forbidden = servers
    obs, info = env.reset(seed=0)
    env.unwrapped.page.goto(site.url + "form")
    obs, info = env.unwrapped.observe()
    site.requests.clear()
    obs, _, _, _, info = click(env, obs, "button", "Send")
    assert info["error"] is None and obs["url"] == site.url + "landed", (info, obs["url"])
    # Each hop once: the POST with its form, then the 303's target as a plain GET.
    assert site.requests == [("POST", "/post", "who=ann"), ("GET", "/landed", "")]
    # The kept-alive connection still works (an unread body would be read as the next request line).
    obs, _, _, _, info = click(env, obs, "link", "Again")
    assert info["error"] is None and "Send" in obs["axtree"] and site.requests[-1] == ("GET", "/form", "")


def test_a_websocket_to_a_forbidden_origin_is_blocked_and_reported(env, servers):
    site, forbidden = servers
    obs, info = env.reset(seed=0)
    obs, blocked = blocked_after(env, obs, info, "button", "Socket", wait_ms=300)
    assert forbidden.url.replace("http", "ws") in blocked
    state = env.unwrapped.page.evaluate("window.ws.readyState")
    assert state in (2, 3)  # closing or closed, never open


def test_a_worker_fetch_to_a_forbidden_origin_is_blocked_and_reported(env, servers):
    site, forbidden = servers
    obs, info = env.reset(seed=0)
    obs, blocked = blocked_after(env, obs, info, "button", "Worker", wait_ms=500)
    assert forbidden.url + "from-worker" in blocked


def test_goto_a_local_file_is_refused(env):
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("goto [file:///etc/passwd]")
    assert "outside the allowed origins" in info["error"]
    assert "root:" not in obs["axtree"] and not obs["url"].startswith("file:")


def test_miniwob_reads_its_own_folder_and_nothing_else(chromium):
    with gym.make("webgrove/miniwob.click-test-v0", browser=chromium) as env:
        obs, info = env.reset(seed=0)
        assert obs["goal"] and info["error"] is None  # its scripts and styles loaded
        for url in ("file:///etc/passwd", "file:///root/", "file:///"):
            obs, *_, info = env.step(f"goto [{url}]")
            assert "outside the allowed origins" in info["error"]
            assert "root:" not in obs["axtree"]
        page = env.unwrapped.page
        page.evaluate("() => { const a = document.createElement('a'); a.href = 'file:///etc/passwd';"
                      " a.textContent = 'Secrets'; document.body.prepend(a); }")
        obs, info = env.unwrapped.observe()
        obs, *_, info = click(env, obs, "link", "Secrets")
        assert "file:///etc/passwd" in info["blocked_requests"]
        assert "root:" not in obs["axtree"]


@pytest.mark.parametrize("origins", [["file://"], ["file:///"]])
def test_file_scheme_as_a_whole_is_refused(origins, tmp_path):
    page = tmp_path / "p.html"
    page.write_text("<p>hi</p>")
    with pytest.raises(ValueError, match="every file on this machine"):
        gym.make("webgrove/Browser-v0", start_url=page.as_uri(), goal="g", allowed_origins=origins)


def test_one_local_file_may_be_allowed(tmp_path, chromium):
    page = tmp_path / "hello.html"
    page.write_text("<button onclick=\"document.body.append('Thanks!')\">Send</button>")
    with gym.make("webgrove/Browser-v0", start_url=page.as_uri(), goal="Press Send.",
                  browser=chromium) as env:
        obs, info = env.reset(seed=0)
        assert 'button "Send"' in obs["axtree"]
        obs, *_, info = env.step(f"goto [{(tmp_path / 'other.html').as_uri()}]")
        assert "outside the allowed origins" in info["error"]
