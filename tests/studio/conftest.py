"""A real ``dofbot-rl studio`` process and a real headless Chromium (Debian's package) for the
browser tests. Playwright drives the system Chromium through its executable path (Playwright's
own browser download is never used). Screenshots go to ``$DOFBOT_STUDIO_SHOTS`` or a tmp folder.
"""

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def shots(tmp_path_factory):
    """Folder for the screenshots (test artefacts)."""
    folder = Path(os.environ.get("DOFBOT_STUDIO_SHOTS") or tmp_path_factory.mktemp("studio-shots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nstudio screenshots: {folder}")
    return folder


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]' brings playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (apt-get install chromium; .ci/run installs it)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader"])
        yield b
        b.close()


class StudioProcess:
    """``python -m dofbot_rl.cli studio ... --port 0`` with its URL read from its first line."""

    def __init__(self, args, cwd, timeout_s=90.0):
        self.proc = subprocess.Popen([sys.executable, "-m", "dofbot_rl.cli", "studio", *args, "--port", "0"],
                                     cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.log = []
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        self.url = None
        while self.url is None:
            remaining = deadline - time.monotonic()
            assert remaining > 0 and self.proc.poll() is None, "studio did not start:\n" + "".join(self.log)
            try:
                line = self.lines.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            if line.startswith("dofbot-rl studio: http://"):
                self.url = line.split()[2]

    def _read(self):
        for line in self.proc.stdout:
            self.log.append(line)
            self.lines.put(line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@pytest.fixture
def studio(tmp_path):
    """Start a studio (``studio(args...)``); every one started is stopped at the end."""
    started = []

    def start(*args):
        s = StudioProcess(["sim_device=cpu", f"train_dir={tmp_path / 'runs'}", *args], cwd=tmp_path)
        started.append(s)
        return s

    yield start
    for s in started:
        assert s.stop() == 0, "".join(s.log)


@pytest.fixture
def live_studio(tmp_path):
    """A Studio over a 2-robot CPU PanelModel, in this process, serving on 127.0.0.1 (no browser)."""
    from dofbot_rl.panel import DictStore, PanelModel
    from dofbot_rl.studio.app import Studio
    from dofbot_rl.studio.serve import start_server

    model = PanelModel(DictStore({"train_dir": str(tmp_path / "runs"), "num_envs": 2}), base_overrides=["sim_device=cpu"])
    server, gate = start_server("127.0.0.1", 0)
    yield Studio(model, server)
    model.shutdown()
    gate.stop()
    server.stop()
