"""The in-app threading bridge with the real MuJoCo task and a real rl_games run.

The main thread of the test plays Kit's role: it pumps the bridge (one control step
per request) while rl_games trains or plays on its worker thread.
"""

import threading
import time

import pytest
import torch

from dofbot_rl.config import load_config
from dofbot_rl.rl.checkpoints import CheckpointError, list_checkpoints
from dofbot_rl.rl.threaded import BridgeTimeout, QueuedVecEnv, RunStopped, WorkerRun, start_playing, start_training
from dofbot_rl.tasks import make_task


def _cfg(tmp_path, *extra):
    return load_config(["num_envs=64", "max_iterations=2", f"train_dir={tmp_path}", "sim_device=cpu", *extra])


def _pump_until_finished(run, timeout_s=60.0, budget_s=0.02):
    """The sim loop: pump until the worker thread has ended; returns the steps served."""
    served, deadline = 0, time.monotonic() + timeout_s
    main = threading.current_thread()
    while not run.finished:
        assert time.monotonic() < deadline, "the worker did not finish"
        served += run.pump(max_steps=1, budget_s=budget_s)
        assert threading.current_thread() is main
    return served


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real 2-epoch PPO run of 64 envs trained through the bridge; returns (cfg, task, run, served)."""
    tmp = tmp_path_factory.mktemp("runs")
    cfg = _cfg(tmp)
    task = make_task(cfg)
    step_threads = set()
    run = start_training(cfg, task)
    run.env.before_step.append(lambda t: step_threads.add(threading.current_thread().name))
    served = _pump_until_finished(run)
    run.check()
    return cfg, task, run, served, step_threads


def test_training_runs_on_the_worker_and_steps_on_the_main_thread(trained):
    cfg, task, run, served, step_threads = trained
    assert step_threads == {threading.current_thread().name}  # task.step only ever on the pumping thread
    assert run.result is not None and not run.stopped
    horizon = cfg.train.params.config.horizon_length
    assert served == 1 + 2 * horizon  # one reset, then horizon_length steps per epoch
    assert run.env.steps == 2 * horizon
    assert [p.epoch for p in run.result.history] == [1, 2]
    assert run.result.checkpoint is not None and run.result.checkpoint.is_file()


def test_play_loop_on_the_worker_with_the_trained_checkpoint(trained):
    cfg, task, run, _, _ = trained
    play = start_playing(cfg, task, run.result.checkpoint, max_steps=10)
    assert _pump_until_finished(play) == 11  # reset + 10 steps
    play.check()
    assert play.result == 10 and not play.stopped


def test_stop_while_playing_ends_the_worker_with_run_stopped(trained):
    cfg, task, run, _, _ = trained
    play = start_playing(cfg, task, run.result.checkpoint)
    deadline = time.monotonic() + 30
    while play.env.steps < 5:
        assert time.monotonic() < deadline
        play.pump(budget_s=0.02)
    play.request_stop()  # no graceful path for playing: the sentinel
    assert play.join(10.0)
    assert play.stopped and play.error is None
    assert play.pump() == 0


def test_graceful_stop_while_training_writes_a_checkpoint(tmp_path):
    cfg = load_config(["num_envs=64", "max_iterations=50", f"train_dir={tmp_path}", "sim_device=cpu"])
    run = start_training(cfg, make_task(cfg))
    deadline = time.monotonic() + 30
    while run.env.steps < 10:
        assert time.monotonic() < deadline
        run.pump(budget_s=0.02)
    run.request_stop(graceful=True)
    _pump_until_finished(run)  # the main thread keeps pumping until rl_games has saved
    run.check()
    assert run.stopped
    assert run.result.stopped and len(run.result.history) == 1
    entries = list_checkpoints(tmp_path)
    assert any(e.epoch == 1 for e in entries), entries
    assert not list(tmp_path.rglob("*.tmp"))


def test_worker_crash_surfaces_on_the_main_side(tmp_path):
    cfg = _cfg(tmp_path, f"checkpoint={tmp_path / 'missing.pth'}")
    run = start_training(cfg, make_task(cfg))
    _pump_until_finished(run)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        run.check()


def test_main_side_failure_stops_the_worker(tmp_path):
    cfg = _cfg(tmp_path)
    task = make_task(cfg)
    run = start_training(cfg, task)

    def explode(t):
        if run.env.steps == 3:
            raise RuntimeError("physics blew up")

    run.env.before_step.append(explode)
    with pytest.raises(RuntimeError, match="physics blew up"):
        _pump_until_finished(run)
    assert run.join(10.0)
    assert run.stopped and run.error is None  # the worker unwound through RunStopped
    assert run.pump() == 0


class _TinyTask:
    """Just enough task for the queue mechanics."""

    num_envs, num_observations, num_actions, device = 2, 3, 1, torch.device("cpu")
    cfg = None

    def reset(self):
        return torch.zeros(2, 3)

    def step(self, actions):
        return torch.ones(2, 3), torch.zeros(2), torch.zeros(2, dtype=torch.long), {"time_outs": torch.zeros(2, dtype=torch.bool)}


def test_worker_times_out_when_nobody_pumps():
    env = QueuedVecEnv(_TinyTask(), timeout_s=0.2)
    run = WorkerRun("t", env, env.reset).start()
    assert run.join(5.0)
    with pytest.raises(BridgeTimeout, match="did not serve a reset"):
        run.check()


def test_pump_never_blocks_past_its_budget():
    env = QueuedVecEnv(_TinyTask(), timeout_s=5)
    start = time.monotonic()
    assert env.pump(max_steps=1, budget_s=0.05) == 0
    assert time.monotonic() - start < 0.5
    assert env.pump(max_steps=1, budget_s=0.0) == 0


def test_results_are_copies_and_stop_raises_in_the_worker():
    env = QueuedVecEnv(_TinyTask(), timeout_s=5)
    got = []

    def work():
        got.append(env.step(torch.zeros(2, 1)))
        env.step(torch.zeros(2, 1))  # stopped while waiting

    run = WorkerRun("t", env, work).start()
    deadline = time.monotonic() + 5
    while env.steps < 1:
        assert time.monotonic() < deadline
        env.pump(budget_s=0.05)
    time.sleep(0.1)
    env.stop("user")
    assert run.join(5.0)
    assert run.stopped and run.error is None
    obs = got[0][0]
    assert obs.shape == (2, 3)
    with pytest.raises(RunStopped):
        env.step(torch.zeros(2, 1))
    with pytest.raises(ValueError):
        QueuedVecEnv(_TinyTask(), timeout_s=0)


def test_a_run_that_cannot_finish_its_epoch_saves_its_weights_now(tmp_path):
    """The Kit timeline's Stop: no more physics steps, so the worker's epoch cannot end; the
    session writes the current weights while the worker waits, then forces the stop."""
    from dofbot_rl.panel.session import Session

    cfg = load_config(["num_envs=64", "max_iterations=50", f"train_dir={tmp_path}", "sim_device=cpu"])
    run = start_training(cfg, make_task(cfg))
    deadline = time.monotonic() + 30
    while run.env.steps < 10:  # mid-epoch: the worker waits for its next step
        assert time.monotonic() < deadline
        run.pump(budget_s=0.02)
    session = Session.__new__(Session)
    session.run = run
    saved = session.checkpoint_now()
    assert saved is not None and saved.name.endswith("_stopped.pth") and saved.is_file()
    state = torch.load(saved, map_location="cpu", weights_only=True)
    assert "model" in state and "optimizer" in state
    run.request_stop(graceful=False)
    _pump_until_finished(run)
    assert saved.is_file() and not list(tmp_path.rglob("*.tmp"))
