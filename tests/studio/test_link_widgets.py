"""The Sim2Real section says why the link did not switch on (viser on 127.0.0.1, no browser)."""

import pytest

from dofbot_rl.panel import DictStore, PanelModel


@pytest.fixture
def studio(tmp_path):
    from dofbot_rl.studio.app import Studio
    from dofbot_rl.studio.serve import start_server

    model = PanelModel(DictStore({"train_dir": str(tmp_path / "runs"), "num_envs": 2}), base_overrides=["sim_device=cpu"])
    server, gate = start_server("127.0.0.1", 0)
    s = Studio(model, server)
    yield s
    model.shutdown()
    gate.stop()
    server.stop()


def test_a_bad_port_shows_in_the_link_line(studio, tmp_path):
    """A bad Port left the link line at an older failure (or "off") and put the reason in the
    Task section, out of sight below; the link line now says it, the newest reason only."""
    studio.s2r_token.value = str(tmp_path / "missing-token")
    studio._toggle_link(True)
    studio.sync_widgets()
    assert "cannot read token file" in studio.s2r_status.content and not studio.s2r_on.value
    studio.s2r_token.value, studio.s2r_port.value = "", "http"
    studio._toggle_link(True)
    studio.sync_widgets()
    assert studio.s2r_status.content == "Link: **off (Sim2Real: port must be a number, got 'http')**"
    assert studio.model.status.text == "Sim2Real: port must be a number, got 'http'"
    studio.s2r_port.value = "1"  # nobody listens: the link starts and keeps retrying
    studio._toggle_link(True)
    studio.sync_widgets()
    assert "port must be" not in studio.s2r_status.content and "token" not in studio.s2r_status.content
    studio._toggle_link(False)
