"""The `dofbot-rl` command: summary lines and one clear error line for bad input, nothing half-written."""

import gc
import os
import re
import socket
import subprocess
import sys

import pytest
import torch

from dofbot_rl import cli


def run_cli(capsys, *args):
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["train", "foo=1"], "unknown key 'foo'"),
    (["train", "num_envs=0"], "num_envs must be > 0"),
    (["train", "num_envs=many"], "num_envs"),
    (["train", "task.env.episode_length=-5"], "episode_length must be > 1"),
    (["train", "task=Nope"], "unknown task 'Nope': expected one of DofbotReacher"),
    (["play", "checkpoint=missing.pth"], "checkpoint not found"),
    (["bench", "sizes=0"], "sizes must be positive"),
    (["frobnicate"], "unknown command"),
    # issue 18 item 16: every value checked for finiteness and range at load, names plain, typos named
    (["train", "seed=-1"], "seed must be in 0..4294967295, got -1"),
    (["train", "seed=99999999999"], "seed must be in 0..4294967295"),
    (["train", "dof_vel_scale=nan"], "unknown key 'dof_vel_scale' (did you mean task.env.dof_vel_scale?)"),
    (["train", "task.env.dof_vel_scale=nan"], "task.env.dof_vel_scale=nan must be a finite number"),
    (["train", "train.params.config.num_minibatches=0"], "num_minibatches must be an integer >= 1, got 0"),
    (["train", "train.params.config.horizon_length=0"], "horizon_length must be an integer >= 1, got 0"),
    (["train", "train.params.config.learning_rate=nan"], "train.params.config.learning_rate=nan must be a finite"),
    (["train", "learning_rate=1e-3"], "did you mean train.params.config.learning_rate?"),
    (["train", "task.sim.model=/etc/passwd"], "task.sim.model: /etc/passwd is not a MuJoCo MJCF file"),
    (["train", "task.sim.model=nowhere.xml"], "task.sim.model: no robot model file at nowhere.xml"),
    (["play", "sim2real.enabled=True", "sim2real.token_file=missing.token"], "sim2real.token_file: no such file"),
    (["train", "task.sim.dt=inf"], "task.sim.dt=inf must be a finite number"),
    (["train", "task.sim.dt=0.1"], "task.sim.dt must be in (0, 0.05] s, got 0.1"),  # finite, but the physics blows up
    (["train", "train.params.config.gamma=2"], "train.params.config.gamma must be in (0, 1], got 2"),
    (["train", "train.params.config.tau=1.5"], "train.params.config.tau must be in [0, 1], got 1.5"),
    (["train", "task.env.goal.xy_max=inf"], "task.env.goal.xy_max=inf must be a finite number"),
    (["train", "experiment=.."], "experiment must be a plain name"),
    (["train", "experiment=a/b"], "experiment must be a plain name"),
    (["train", "experiment= "], "experiment must be a plain name"),
    (["train", "num_env=4"], "unknown key 'num_env' (did you mean num_envs?)"),
    (["play", "sim2real.fail_quietely=True"], "did you mean sim2real.fail_quietly?"),
    (["play", "sim2real.port=70000"], "sim2real.port must be in 1..65535"),
    (["play", "sim2real.rate_hz=inf"], "sim2real.rate_hz=inf must be a finite number"),
    (["play", "sim2real.enabled=True", "sim2real.mode=real2sim", "num_envs=1"], "num_envs must be >= 2"),
    (["train", "format=onnx"], "did you mean export.format?"),
    (["bench", "seconds=nan"], "bench.seconds=nan must be a finite number"),
    (["bench", "train_epochs=-1"], "bench.train_epochs must be >= 0"),
    (["export", "format=tflite"], "format=tflite is unknown"),
    (["export", "samples=0"], "samples=0 must be >= 1"),
    (["export", "verify=maybe"], "export.verify=maybe"),
    (["bundle-server", "."], "is a directory"),
    (["bundle-server", "nowhere/x.pyz"], "no directory nowhere"),
    (["train", "checkpoint=last"], "checkpoint=last: no checkpoint in runs/DofbotReacher/nn yet"),
    (["play", "checkpoint=."], "is a directory: pass a .pth file"),
    (["assets", "x=1"], "usage: dofbot-rl assets"),
])
def test_bad_input_gives_one_error_line_and_writes_nothing(capsys, in_tmp, args, message):
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert gc.isenabled()  # train's start-up pause of the collector ends on every path
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dofbot-rl: error:") and message in lines[0], err
    assert "Traceback" not in err
    assert not (in_tmp / "runs").exists()


@pytest.mark.parametrize("command", ["train", "play"])
def test_more_envs_than_memory_is_one_error_line(capsys, in_tmp, command):
    """A num_envs the machine cannot hold ends in one line naming the cause, not torch's allocator traceback."""
    code, out, err = run_cli(capsys, command, "num_envs=99999999999", "sim_device=cpu")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err, err
    assert lines[-1].startswith("dofbot-rl: error: out of memory:") and "lower num_envs" in lines[-1], err
    assert not (in_tmp / "runs").exists()  # nothing written


def test_unusable_sim2real_token_files_are_one_line_at_load(capsys, in_tmp, monkeypatch):
    """issue 18 item 17 on the client side: a token file that exists but cannot be used is named at load
    (it was "no such file" for a FIFO or /dev/zero, and a ValueError traceback for an empty or a long one,
    once the link started), and ~ in its path is expanded where it is read."""
    os.mkfifo(in_tmp / "fifo.tok")
    (in_tmp / "empty.tok").write_bytes(b"")
    (in_tmp / "long.tok").write_bytes(b"x" * 5000)
    for name, message in [("fifo.tok", "is not a regular file"), ("/dev/zero", "is not a regular file"),
                          ("empty.tok", "is empty"), ("long.tok", "is longer than 4096 bytes")]:
        code, _, err = run_cli(capsys, "play", "sim2real.enabled=True", f"sim2real.token_file={name}", "num_envs=4")
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("dofbot-rl: error: sim2real.token_file:"), err
        assert message in lines[0], err
    monkeypatch.setenv("HOME", str(in_tmp))
    (in_tmp / "ok.tok").write_bytes(b"secret-token")
    with socket.socket() as closed:  # a port nobody listens on: the link fails, after the token was read
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    code, _, err = run_cli(capsys, "play", "sim2real.enabled=True", "sim2real.token_file='~/ok.tok'",
                           f"sim2real.port={port}", "num_envs=4", "episodes=4")
    assert code == 2 and "Traceback" not in err and "token" not in err.strip().splitlines()[-1], err


def test_foreign_and_mismatched_checkpoints_are_refused(capsys, in_tmp, tiny_run):
    (in_tmp / "notes.pth").write_text("not a checkpoint")
    code, _, err = run_cli(capsys, "play", "checkpoint=notes.pth")
    assert code == 2 and "not a loadable rl_games checkpoint: it is not a torch checkpoint file (16 bytes" in err

    torch.save({"weights": torch.zeros(3)}, in_tmp / "foreign.pth")
    code, _, err = run_cli(capsys, "play", "checkpoint=foreign.pth")
    assert code == 2 and "no 'model' state dict" in err

    _, checkpoint = tiny_run
    state = torch.load(checkpoint, weights_only=False)
    state["model"]["running_mean_std.running_mean"] = torch.zeros(27)
    torch.save(state, in_tmp / "urdf27.pth")
    code, _, err = run_cli(capsys, "train", "checkpoint=urdf27.pth", "max_iterations=1", "num_envs=8")
    assert code == 2 and "trained for 27 observations / 6 actions, the task has 29 / 6" in err
    assert not (in_tmp / "runs").exists()

    # issue 18 item 3: truncated file, and a network that differs from the config: one line, nothing written
    (in_tmp / "cut.pth").write_bytes(checkpoint.read_bytes()[:3000])
    code, _, err = run_cli(capsys, "play", "checkpoint=cut.pth")
    assert code == 2 and "cut.pth is not a loadable rl_games checkpoint: it is truncated or damaged (3000 bytes" in err, err
    for command in ("train", "play"):
        code, _, err = run_cli(capsys, command, f"checkpoint={checkpoint}", "train.params.network.mlp.units=[128,128]",
                               "max_iterations=1", "num_envs=8", "episodes=8")
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1, err
        assert "has an MLP of [64, 64] units, the config asks for [128, 128]" in lines[0]
        assert "'train.params.network.mlp.units=[64,64]'" in lines[0]
        assert not (in_tmp / "runs").exists()


def test_train_refusals_are_one_line_on_the_real_console(in_tmp, tiny_run):
    """issue 18 item 3 as a user sees it (logging on): a resume whose network differs from the config is
    the error line alone, not "training ... (resuming ...)" followed by it."""
    _, checkpoint = tiny_run
    proc = subprocess.run([sys.executable, "-m", "dofbot_rl.cli", "train", f"checkpoint={checkpoint}",
                           "train.params.network.mlp.units=[128,128]", "num_envs=8", "max_iterations=1",
                           "experiment=other"], capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("dofbot-rl: error: ") and "the config asks for [128, 128]" in lines[0]
    assert not (in_tmp / "runs").exists()


_WARN_MID_RUN = """
import logging, sys
from dofbot_rl import cli
from dofbot_rl.rl import trainer
record = trainer.Trainer._record
def _record(self, progress):
    record(self, progress)
    if progress.epoch == 2:
        logging.getLogger("dofbot_rl.rl.trainer").warning("a warning while the bar shows")
trainer.Trainer._record = _record
sys.exit(cli.main(sys.argv[1:]))
"""


def test_log_lines_during_training_stand_apart_from_the_progress_bar(in_tmp):
    """A warning logged while the bar is drawn starts its own line (it was glued to the bar's end:
    "...env-steps/s]a warning ...")."""
    proc = subprocess.run([sys.executable, "-c", _WARN_MID_RUN, "train", "num_envs=8", "max_iterations=3",
                           "sim_device=cpu"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stderr.split("\n") if "a warning while the bar shows" in line)
    assert line.split("\r")[-1].startswith("a warning while the bar shows"), repr(line)


_GC_STATES = """
import gc, sys
from dofbot_rl import cli
from dofbot_rl.rl import trainer
seen = []
train, record = trainer.Trainer.train, trainer.Trainer._record
def _train(self):
    seen.append(("train", gc.isenabled()))
    return train(self)
def _record(self, progress):
    seen.append(("before epoch %d" % progress.epoch, gc.isenabled()))
    record(self, progress)  # calls the CLI's on_progress
    seen.append(("after epoch %d" % progress.epoch, gc.isenabled()))
trainer.Trainer.train, trainer.Trainer._record = _train, _record
code = cli.main(sys.argv[1:])
print(code, seen, gc.isenabled(), gc.get_freeze_count() > 0)
"""


def test_the_garbage_collector_pauses_through_start_up_and_runs_from_the_first_epoch(in_tmp):
    """`train` pauses Python's cyclic collector while it imports and builds (start-up, issue 17) and
    freezes what start-up made at the first epoch; training runs with the collector on."""
    proc = subprocess.run([sys.executable, "-c", _GC_STATES, "train", "num_envs=8", "max_iterations=2",
                           "sim_device=cpu"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == (
        "0 [('train', False), ('before epoch 1', False), ('after epoch 1', True), ('before epoch 2', True), "
        "('after epoch 2', True)] True True"), proc.stdout


def test_play_ends_with_the_machine_readable_line(capsys, tiny_run):
    _, checkpoint = tiny_run
    code, out, _ = run_cli(capsys, "play", f"checkpoint={checkpoint}", "num_envs=16", "episodes=16")
    assert code == 0
    assert re.fullmatch(r"success_rate=[0-9.]+ goals_per_episode=[0-9.]+ episodes=16", out.strip().splitlines()[-1])


def test_bench_ends_with_the_machine_readable_line(capsys):
    code, out, _ = run_cli(capsys, "bench", "sizes=8,32", "seconds=0.2", "sim_device=cpu")
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"env_steps_per_s=[0-9.]+ overhead_ratio=[0-9.]+ num_envs=(8|32) device=cpu", last), last
    assert "| num_envs |" in out


def test_console_script_is_installed_and_fails_cleanly(in_tmp):
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-m", "dofbot_rl.cli", "train", "num_envs=-1"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "dofbot-rl: error: num_envs must be > 0, got -1"


def test_serve_port_in_use_is_one_line_naming_the_port(in_tmp):
    """issue 18 item 7: `serve` logs each line once (not through two handlers), and names the busy port."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "dofbot_rl.cli", "serve", "--host", "127.0.0.1", "--port",
                               str(port)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if "cannot start" in line]
    assert len(lines) == 1, proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0]


def test_bundle_server_default_goes_to_runs(capsys, in_tmp):
    code, out, _ = run_cli(capsys, "bundle-server")
    assert code == 0 and (in_tmp / "runs" / "dofbot_server.pyz").is_file()
    assert "runs/dofbot_server.pyz" in out


def test_help_is_generated_for_every_command(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and "train" in out and "bundle-server" in out and ":class:" not in out and "``" not in out
    for command in ("train", "play", "export", "bench", "bundle-server", "assets"):
        code, out, err = run_cli(capsys, command, "--help")
        assert code == 0 and out.startswith(f"usage: dofbot-rl {command}"), err
        assert "``" not in out and ":class:" not in out
    _, out, _ = run_cli(capsys, "train", "--help")
    assert "num_envs=null" in out and "robots simulated in parallel" in out and "checkpoint=" in out
    _, out, _ = run_cli(capsys, "export", "--help")
    assert "format=all" in out and "verify=True" in out
    _, out, _ = run_cli(capsys, "bench", "--help")
    assert "sizes=" in out and "train_epochs=0" in out
    _, out, _ = run_cli(capsys, "play", "--help")
    assert "sim2real.host=127.0.0.1" in out and "episodes=20" in out and "teleop=False" in out


def test_checkpoint_last_resolves_the_experiments_newest(capsys, caplog, tiny_run):
    cfg, checkpoint = tiny_run
    caplog.set_level("INFO", logger="dofbot_rl")
    code, out, err = run_cli(capsys, "play", "checkpoint=last", f"train_dir={cfg.train_dir}",
                             f"experiment={cfg.experiment}", "num_envs=8", "episodes=8")
    assert code == 0, err
    assert f"playing {checkpoint}" in caplog.text and out.strip().splitlines()[-1].endswith("episodes=8")
