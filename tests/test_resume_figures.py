"""A resumed run's figures continue from the run it resumes (issue 18 item 5)."""

import json

from dofbot_rl.config import load_config
from dofbot_rl.rl.trainer import Trainer, _Observer, resumed_elapsed_s


def test_resumed_elapsed_is_read_up_to_the_checkpoint_epoch(tmp_path):
    nn = tmp_path / "run" / "nn"
    nn.mkdir(parents=True)
    rows = [{"epoch": e, "elapsed_s": 1.5 * e} for e in (1, 2, 3, 4)]
    (tmp_path / "run" / "progress.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    assert resumed_elapsed_s(nn / "last_run_ep_3.pth", 3) == 4.5
    assert resumed_elapsed_s(nn / "last_run_ep_3.pth", None) == 0.0
    assert resumed_elapsed_s(tmp_path / "elsewhere.pth", 3) == 0.0


def test_first_resumed_epoch_counts_only_its_own_env_steps():
    class Algo:
        frame = 0

        def set_full_state_weights(self, state, set_epoch=True):
            self.frame = state["frame"]

    class Owner:
        _resume_state = {"frame": 5_000_000}
        _algo = None

        def _save(self, filename):
            raise AssertionError("no save in this test")

        def _mark(self, stage):  # Trainer's start-up stages: not measured here
            pass

    observer = _Observer(Owner())
    observer.after_init(Algo())
    assert observer._last_frame == 5_000_000  # was 0: the first epoch reported ~9M env-steps/s


def test_resume_continues_elapsed_time(tmp_path):
    common = ["num_envs=16", "sim_device=cpu", f"train_dir={tmp_path}", "experiment=r",
              "train.params.config.horizon_length=8", "train.params.config.num_minibatches=2"]
    first = Trainer(load_config(common + ["max_iterations=2"])).train()
    before = first.history[-1].elapsed_s
    second = Trainer(load_config(common + ["max_iterations=4", f"checkpoint={first.checkpoint}"])).train()
    assert second.history and second.history[0].epoch > first.history[-1].epoch
    assert second.history[0].elapsed_s > before  # continues; it restarted at 0 before
