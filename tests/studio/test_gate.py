"""The studio's gate: a token for any non-loopback host, an Origin check on every bind.

Real sockets on loopback only (127.0.0.1 and 127.0.0.2, both in 127.0.0.0/8); the
browser is Debian's headless Chromium.
"""

import hashlib
import hmac
import http.client
import urllib.error
import urllib.request

import pytest

from dofbot_rl import cli
from dofbot_rl.studio.gate import host_is_loopback, same_origin
from dofbot_rl.studio.serve import parse_args, start_server

TOKEN = b"a-long-secret-0123456789"


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "studio.token"
    path.write_bytes(TOKEN + b"\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def served():
    """``served(host, token)``: viser behind the gate, in this process; stopped at the end."""
    started = []

    def start(host="127.0.0.1", token=None):
        server, gate = start_server(host, 0, token)
        started.append((server, gate))
        return gate

    yield start
    for server, gate in started:
        gate.stop()
        server.stop()


def _get(url, headers=None):
    """``(status, body)`` of a plain GET (no redirects followed)."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=30) as answer:
            return answer.status, answer.read(), answer.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def _ws_status(gate, origin=None, cookie=None, query=""):
    """HTTP status of a websocket upgrade to the gate (101: opened, then closed at once)."""
    import websockets.exceptions
    from websockets.sync.client import connect

    headers = {"Cookie": cookie} if cookie else None
    try:
        with connect(f"ws://{gate.host}:{gate.port}/{query}", origin=origin, additional_headers=headers,
                     subprotocols=["viser-v0"], open_timeout=30):
            return 101
    except websockets.exceptions.InvalidStatus as exc:
        return exc.response.status_code


def _cookie(gate):
    return f"{gate.cookie_name}={hmac.new(TOKEN, b'dofbot-rl studio cookie', hashlib.sha256).hexdigest()}"


# ----------------------------------------------------------------------------------
# (d) the command line
# ----------------------------------------------------------------------------------
def test_non_loopback_host_without_token_file_is_one_line(capsys):
    assert cli.main(["studio", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dofbot-rl: error: --host 0.0.0.0 would let anyone") \
        and "--token-file" in err[0], err


@pytest.mark.parametrize("mode, message", [(0o644, "is readable by other users (mode 644): chmod 600 it"),
                                           (None, "cannot read token file")])
def test_bad_token_file_is_the_links_one_line(tmp_path, mode, message, capsys):
    path = tmp_path / "token"
    if mode is not None:
        path.write_text("secret\n")
        path.chmod(mode)
    assert cli.main(["studio", "--host", "0.0.0.0", "--token-file", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dofbot-rl: error: ") and message in err[0], err


def test_readable_token_file_with_the_override(tmp_path):
    path = tmp_path / "token"
    path.write_text("secret\n")
    path.chmod(0o644)
    options, _ = parse_args(["--host", "0.0.0.0", "--token-file", str(path), "--allow-readable-token"])
    assert options.token == b"secret"


def test_token_decision_on_the_host_string(token_file):
    options, _ = parse_args(["--host", "192.168.1.20", "--token-file", str(token_file)])
    assert options.token == TOKEN  # a non-loopback host is accepted with a token file (nothing bound here)
    options, _ = parse_args([])
    assert options.host == "127.0.0.1" and options.token is None


def test_header_rules():
    assert host_is_loopback("127.0.0.1:8080") and host_is_loopback("localhost:1") and host_is_loopback("[::1]:80")
    assert not host_is_loopback("evil.example:8080") and not host_is_loopback(None) and not host_is_loopback("")
    assert same_origin("http://127.0.0.1:8080", "127.0.0.1:8080")
    assert not same_origin("http://evil.example", "127.0.0.1:8080") and not same_origin(None, "127.0.0.1:8080")
    assert not same_origin("http://127.0.0.1:8081", "127.0.0.1:8080")
    assert not same_origin("null", "127.0.0.1:8080")


# ----------------------------------------------------------------------------------
# (b) no token, a wrong token: 401 / 403, no page, no websocket
# ----------------------------------------------------------------------------------
def test_missing_or_wrong_token_gets_no_page_and_no_websocket(served):
    gate = served("127.0.0.2", TOKEN)
    base = f"http://127.0.0.2:{gate.port}/"
    status, body, _ = _get(base)
    assert status == 401 and b"<html" not in body.lower() and b"token" in body
    status, body, _ = _get(base + "?token=wrong")
    assert status == 403 and b"<html" not in body.lower()
    status, body, _ = _get(base + "assets/index.js")  # no asset either
    assert status == 401
    status, _, _ = _get(base, {"Cookie": f"{gate.cookie_name}=forged"})
    assert status == 403
    origin = f"http://127.0.0.2:{gate.port}"
    assert _ws_status(gate, origin=origin) == 401
    assert _ws_status(gate, origin=origin, cookie=f"{gate.cookie_name}=forged") == 403
    assert _ws_status(gate, origin=origin, query="?token=wrong") == 403


def test_the_token_becomes_a_private_cookie_and_opens_the_page(served):
    gate = served("127.0.0.2", TOKEN)
    status, _, headers = _get(gate.url())
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(_cookie(gate) + ";") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, body, headers = _get(f"http://127.0.0.2:{gate.port}/", {"Cookie": _cookie(gate)})
    assert status == 200 and b"<html" in body.lower() and headers["X-Frame-Options"] == "DENY"
    assert _ws_status(gate, origin=f"http://127.0.0.2:{gate.port}", cookie=_cookie(gate)) == 101


# ----------------------------------------------------------------------------------
# (c) a websocket from another origin is refused, on both binds
# ----------------------------------------------------------------------------------
def test_foreign_origin_websocket_is_refused_on_the_loopback_bind(served):
    gate = served("127.0.0.1")
    assert _ws_status(gate, origin="http://evil.example") == 403
    assert _ws_status(gate, origin=f"http://127.0.0.1:{gate.port + 1}") == 403
    assert _ws_status(gate) == 403  # no Origin at all: not a page of this studio
    assert _ws_status(gate, origin=f"http://127.0.0.1:{gate.port}") == 101  # the page's own origin
    conn = http.client.HTTPConnection("127.0.0.1", gate.port, timeout=30)  # DNS rebinding: a foreign Host
    conn.request("GET", "/", headers={"Host": f"evil.example:{gate.port}"})
    assert conn.getresponse().status == 403
    conn.close()


def test_foreign_origin_websocket_is_refused_with_a_token(served):
    gate = served("127.0.0.2", TOKEN)
    assert _ws_status(gate, origin="http://evil.example", cookie=_cookie(gate)) == 403
    assert _ws_status(gate, origin="http://evil.example", query="?token=" + TOKEN.decode()) == 403


# ----------------------------------------------------------------------------------
# (a) a browser with the printed address gets the panel and can Load
# ----------------------------------------------------------------------------------
def test_browser_with_the_printed_address_loads(browser, studio, token_file, shots):
    from playwright.sync_api import expect

    s = studio("num_envs=4", "--host", "127.0.0.2", "--token-file", str(token_file))
    assert s.url.startswith("http://127.0.0.2:") and "?token=" in s.url
    base = s.url.split("?")[0]
    page = browser.new_page()
    response = page.goto(base)  # no token: no page
    assert response.status == 401
    assert page.get_by_role("button", name="Load", exact=True).count() == 0
    page.goto(s.url)
    assert page.url == base  # the token left the address bar for a cookie
    load = page.get_by_role("button", name="Load", exact=True)
    load.wait_for(timeout=90_000)
    load.click()
    expect(page.get_by_text("Loaded 4 robots").first).to_be_visible(timeout=60_000)
    page.screenshot(path=str(shots / "05_token_gate_loaded.png"))
    page.close()


def test_help_lists_the_token_options():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "dofbot_rl.cli", "studio", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "--token-file" in out.stdout and "--allow-readable-token" in out.stdout, out
