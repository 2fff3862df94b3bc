"""The Sim2Real section says why the link did not switch on (viser on 127.0.0.1, no browser)."""


def test_a_bad_port_shows_in_the_link_line(live_studio, tmp_path):
    """A bad Port left the link line at an older failure (or "off") and put the reason in the
    Task section, out of sight below; the link line now says it, the newest reason only."""
    live_studio.s2r_token.value = str(tmp_path / "missing-token")
    live_studio._toggle_link(True)
    live_studio.sync_widgets()
    assert "cannot read token file" in live_studio.s2r_status.content and not live_studio.s2r_on.value
    live_studio.s2r_token.value, live_studio.s2r_port.value = "", "http"
    live_studio._toggle_link(True)
    live_studio.sync_widgets()
    assert live_studio.s2r_status.content == "Link: **off (Sim2Real: port must be a number, got 'http')**"
    assert live_studio.model.status.text == "Sim2Real: port must be a number, got 'http'"
    live_studio.s2r_port.value = "1"  # nobody listens: the link starts and keeps retrying
    live_studio._toggle_link(True)
    live_studio.sync_widgets()
    assert "port must be" not in live_studio.s2r_status.content and "token" not in live_studio.s2r_status.content
    live_studio._toggle_link(False)
