"""``dofbot-rl``: train, play, benchmark, export and serve, headless.

Usage (Hydra overrides as in IsaacGymEnvs / OmniIsaacGymEnvs)::

    dofbot-rl train task=DofbotReacher num_envs=512 max_iterations=150 sim_device=cpu
    dofbot-rl play checkpoint=runs/DofbotReacher/nn/DofbotReacher.pth episodes=512
    dofbot-rl bench sizes=64,512,2048 seconds=2 train_epochs=0
    dofbot-rl export checkpoint=... format=onnx verify=True
    dofbot-rl serve --arm sim                       (the Dofbot's sim-to-real server, port 65432)
    dofbot-rl bundle-server dofbot_server.pyz       (one file to copy to the Jetson)
    dofbot-rl assets                                (regenerate data/robots/dofbot/ from dofbot_rl/robot.py)
    dofbot-rl studio num_envs=64 --port 8080        (the RL Examples panel in a web browser; pip extra [studio])

Override keys: config/config.yaml, config/task/DofbotReacher.yaml, config/train/DofbotReacherPPO.yaml.

Errors a user can fix (bad override, missing checkpoint, wrong shapes...) end in one
line ``dofbot-rl: error: ...`` and exit status 2; nothing is written half.
"""

import logging
import math
import signal
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from dofbot_rl.errors import USER_ERRORS, UsageError
from dofbot_rl.mujoco_gl import import_mujoco

log = logging.getLogger("dofbot_rl")

USAGE = __doc__


def _split_extras(args: Sequence[str], extras: Dict[str, type]) -> Tuple[List[str], Dict[str, object]]:
    """Separate command-specific ``key=value`` options from Hydra overrides."""
    overrides, values = [], {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key in extras:
            kind = extras[key]
            try:
                if kind is bool:
                    if value.lower() not in ("true", "false", "1", "0"):
                        raise ValueError(value)
                    values[key] = value.lower() in ("true", "1")
                elif kind is list:
                    values[key] = [int(v) for v in value.split(",") if v]
                else:
                    values[key] = kind(value)
            except ValueError:
                raise UsageError(f"{key}={value} is not a valid {kind.__name__}") from None
        else:
            overrides.append(arg)
    return overrides, values


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr)
    for noisy in ("matplotlib", "PIL", "rl_games", "h5py"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fmt(value: float, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


# ----------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------
def cmd_train(args: Sequence[str]) -> int:
    """Train PPO; ends with the checkpoint path, the learning curve and a summary line."""
    from tqdm import tqdm

    from dofbot_rl.config import load_config
    from dofbot_rl.rl.trainer import Trainer

    cfg = load_config(list(args))
    if cfg.test:
        return cmd_play(args)
    log.info("training %s: %d envs on %s, %d epochs -> %s/%s", cfg.task.name, cfg.num_envs, cfg.sim_device,
             cfg.max_iterations, cfg.train_dir, cfg.experiment)
    bar = tqdm(total=int(cfg.max_iterations), unit="epoch", file=sys.stderr, dynamic_ncols=True)
    last = {}

    def on_progress(p):
        for key in ("mean_reward", "goals_per_episode", "success_rate"):
            value = getattr(p, key)
            if not math.isnan(value):
                last[key] = value
        bar.n = p.epoch
        bar.set_postfix_str(f"reward {_fmt(last.get('mean_reward'), '.1f')} | goals/ep {_fmt(last.get('goals_per_episode'), '.1f')}"
                            f" | success {_fmt(last.get('success_rate'), '.0%')} | {p.env_steps_per_s:,.0f} env-steps/s")
        bar.refresh()

    trainer = Trainer(cfg, on_progress=on_progress, quiet=True)

    def first_ctrl_c(signum, frame):  # stop cleanly: rl_games ends the epoch and writes a checkpoint
        log.info("\nCtrl+C: stopping after this epoch and writing a checkpoint (Ctrl+C again aborts)")
        trainer.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first_ctrl_c)
    try:
        result = trainer.train()
    except KeyboardInterrupt:
        bar.close()
        log.info("aborted: checkpoints already written are in %s/nn", trainer.experiment_dir)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
    log.info("checkpoint: %s", result.checkpoint)
    if result.curve:
        log.info("learning curve: %s", result.curve)
    log.info("tensorboard: tensorboard --logdir %s", result.experiment_dir / "summaries")
    print(f"checkpoint={result.checkpoint} goals_per_episode={_fmt(last.get('goals_per_episode'), '.3f')} "
          f"success_rate={_fmt(last.get('success_rate'), '.4f')} epochs={result.history[-1].epoch if result.history else 0}")
    return 0


def cmd_play(args: Sequence[str]) -> int:
    """Play a checkpoint (default: the newest of the experiment, else the shipped one) and report success."""
    from pathlib import Path

    from tqdm import tqdm

    from dofbot_rl.config import ConfigError, load_config
    from dofbot_rl.rl.checkpoints import latest_checkpoint, validate_for_task
    from dofbot_rl.rl.play import default_checkpoint, evaluate
    from dofbot_rl.tasks import TASKS

    cfg = load_config(list(args) + ["test=True"])
    import_mujoco(gl=bool(cfg.render))  # only render=True touches OpenGL (dofbot_rl.mujoco_gl)
    if cfg.teleop:  # a teleop demo scene, capped by task.teleop.max_robots (0: no cap)
        from dofbot_rl.teleop.model import TeleopConfig, cap_num_envs

        capped = cap_num_envs(cfg.num_envs, TeleopConfig.from_mapping(dict(cfg.task.teleop)).max_robots)
        if capped != cfg.num_envs:
            log.info("teleop: %d robots (task.teleop.max_robots)", capped)
            cfg = load_config(list(args) + ["test=True", f"num_envs={capped}"])
    checkpoint = Path(cfg.checkpoint) if cfg.checkpoint else (
        latest_checkpoint(Path(cfg.train_dir) / cfg.experiment) or default_checkpoint())
    if checkpoint is None:
        raise ConfigError("no checkpoint given and none found in runs/ or data/checkpoints/: pass checkpoint=PATH")
    task_cls = TASKS[cfg.task.name]
    validate_for_task(checkpoint, task_cls.num_observations, task_cls.num_actions)
    log.info("playing %s on %d envs (%s)", checkpoint, cfg.num_envs, cfg.sim_device)
    hooks = _PlayHooks(cfg)
    bar = tqdm(total=1, unit="step", file=sys.stderr, dynamic_ncols=True, disable=cfg.teleop)

    def progress(done, total):
        bar.total = total
        bar.n = done
        if done % 20 == 0 or done == total:
            bar.refresh()

    try:
        with hooks:
            result = evaluate(cfg, checkpoint, on_step=hooks.on_step if hooks.active else None, progress=progress,
                              quiet=True)
    finally:
        bar.close()
    print(result.summary_line())
    return 0


class _PlayHooks:
    """Optional per-step work in ``play``: keyboard teleop of env 0, sim-to-real mirroring of env 0,
    a rendered rollout of env 0.

    With teleop or sim-to-real on, ``play`` runs at real time (60 control steps per second).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.teleop = None
        self.terminal = None
        self.link = None  # the sim-to-real link, as the panel's (dofbot_rl.panel.sim2real_link)
        self._link_hook = None
        self.recorder = None
        self._next_tick = None
        self.realtime = bool(cfg.teleop or cfg.sim2real.enabled)
        self.active = self.realtime or bool(cfg.render)

    def __enter__(self):
        if self.cfg.render:
            from dofbot_rl.config import model_path
            from dofbot_rl.render import RolloutRecorder

            self.recorder = RolloutRecorder(model_path(self.cfg), self.cfg.task.sim.dt * self.cfg.task.env.control_frequency_inv)
        return self

    def on_step(self, task, actions):
        if self.recorder is not None:
            self.recorder.capture(task)
        if not self.realtime:
            return
        # A human or a real arm is in the loop: run at real time (one control step per control_dt).
        now = time.monotonic()
        self._next_tick = max(self._next_tick or now, now - task.control_dt) + task.control_dt
        time.sleep(max(0.0, self._next_tick - now))
        if self.cfg.teleop:
            self._teleop_step(task)
        if self.cfg.sim2real.enabled:
            self._sim2real_step(task)

    def _teleop_step(self, task):
        from dofbot_rl.teleop import TeleopBindings, TeleopModel, drive_task
        from dofbot_rl.teleop.terminal import TerminalTeleop

        if self.teleop is None:
            self.teleop = TeleopModel(TeleopBindings.from_config(dict(self.cfg.task.teleop)))
            self.teleop.select(0, task.dof_pos[0])
            self.terminal = TerminalTeleop(self.teleop, dof_pos_of=lambda i: task.dof_pos[i], num_envs=task.num_envs)
            self.terminal.open()
        self.terminal.poll()
        drive_task(self.teleop, task, task.control_dt)

    def _sim2real_step(self, task):
        if self.link is None:  # env 0: its joints (sim2real), its goal (goal) or the arm's read-back (real2sim)
            from dofbot_rl.panel.sim2real_link import Sim2RealLink

            self.link = Sim2RealLink()
            self.link.start(dict(self.cfg.sim2real))
            self._link_hook = self.link.step_hook(lambda: 0)
        self._link_hook(task, None, None)

    def __exit__(self, *exc):
        if self.recorder is not None:
            if self.recorder.frames:
                path = self.recorder.save(Path(self.cfg.train_dir) / self.cfg.experiment / "rollout.gif")
                log.info("rendered rollout of env 0: %s", path)
            self.recorder.close()
        if self.terminal is not None:
            self.terminal.close()
        if self.link is not None:
            self.link.switch_off()
        return False


def cmd_bench(args: Sequence[str]) -> int:
    """Print env-steps/s of the physics loop, the task loop (and PPO) per num_envs, then one summary line."""
    from dofbot_rl.bench import format_table, run_bench
    from dofbot_rl.config import load_config

    overrides, extra = _split_extras(args, {"sizes": list, "seconds": float, "train_epochs": int, "json": str})
    cfg = load_config(overrides)
    default_sizes = [64, 512, 2048] if cfg.sim_device == "cpu" else [1024, 4096, 16384, 65536]
    sizes = extra.get("sizes") or default_sizes
    if any(n <= 0 for n in sizes):
        raise UsageError(f"sizes must be positive, got {sizes}")
    log.info("benchmarking on %s: num_envs %s", cfg.sim_device, sizes)
    rows = run_bench(cfg, sizes, seconds=extra.get("seconds", 2.0), train_epochs=extra.get("train_epochs", 0),
                     json_path=extra.get("json"),
                     on_row=lambda r: log.info("num_envs=%d physics %.0f task %.0f env-steps/s", r.num_envs,
                                               r.physics_steps_per_s, r.task_steps_per_s))
    print(format_table(rows))
    best = max(rows, key=lambda r: r.task_steps_per_s)
    print(f"env_steps_per_s={best.task_steps_per_s:.1f} overhead_ratio={best.overhead_ratio:.3f} "
          f"num_envs={best.num_envs} device={best.device}")
    return 0


def cmd_export(args: Sequence[str]) -> int:
    """Export a checkpoint's deterministic policy (see :mod:`dofbot_rl.rl.export`)."""
    from dofbot_rl.rl import export

    return export.main(args)


def cmd_serve(args: Sequence[str]) -> int:
    """Run the sim-to-real server (argparse options; see ``dofbot-rl serve --help``)."""
    from dofbot_rl.sim2real import server

    return server.main(list(args)) or 0


def cmd_bundle_server(args: Sequence[str]) -> int:
    """Write the one-file server zipapp to copy to the Dofbot's Jetson."""
    from pathlib import Path

    from dofbot_rl.sim2real.bundle import build_server_zipapp

    if len(args) != 1:
        raise UsageError("usage: dofbot-rl bundle-server OUT.pyz")
    path = Path(build_server_zipapp(args[0]))
    print(f"wrote {path}: copy it to the Jetson and run `python3 {path.name} --arm armlib`")
    return 0


def cmd_studio(args: Sequence[str]) -> int:
    """The RL Examples panel in a web browser (see :mod:`dofbot_rl.studio`)."""
    from dofbot_rl.studio.serve import main as studio_main

    return studio_main(args)


def cmd_assets(args: Sequence[str]) -> int:
    """Regenerate data/robots/dofbot/ (MJCF, URDF) from dofbot_rl.robot."""
    from dofbot_rl.assets import write_models

    for kind, path in write_models().items():
        print(f"wrote {kind}: {path}")
    return 0


COMMANDS = {
    "train": cmd_train,
    "play": cmd_play,
    "bench": cmd_bench,
    "export": cmd_export,
    "serve": cmd_serve,
    "bundle-server": cmd_bundle_server,
    "assets": cmd_assets,
    "studio": cmd_studio,
}


def main(argv: Sequence[str] = None) -> int:
    """Entry point of the ``dofbot-rl`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    verbose = "-v" in rest
    rest = [a for a in rest if a != "-v"]
    _setup_logging(verbose)
    if command not in COMMANDS:
        print(f"dofbot-rl: error: unknown command {command!r}; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        if command != "play":  # play decides after reading render= (cmd_play)
            import_mujoco(gl=False)
        return COMMANDS[command](rest)
    except USER_ERRORS as exc:
        print(f"dofbot-rl: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
