"""``dofbot-rl``: train, play, benchmark, export and serve, headless.

``dofbot-rl --help`` lists the commands, ``dofbot-rl COMMAND --help`` their options (generated
from the config schema's field comments, :mod:`dofbot_rl.config`). Options are Hydra overrides
with the names of IsaacGymEnvs / OmniIsaacGymEnvs (``task= num_envs= checkpoint= test= ...``).

Errors a user can fix (bad override, missing checkpoint, wrong shapes...) end in one
line ``dofbot-rl: error: ...`` and exit status 2; nothing is written before the input is checked.
"""

import gc
import logging
import math
import signal
import sys
import textwrap
import time
from pathlib import Path
from typing import Sequence

from dofbot_rl.errors import USER_ERRORS, UsageError
from dofbot_rl.mujoco_gl import import_mujoco
from dofbot_rl.plotting import format_value

log = logging.getLogger("dofbot_rl")

EXAMPLES = """\
examples:
  dofbot-rl train num_envs=512 max_iterations=150 sim_device=cpu experiment=my_run
  dofbot-rl train checkpoint=last experiment=my_run max_iterations=300     (resume my_run's newest checkpoint)
  dofbot-rl play checkpoint=data/checkpoints/DofbotReacher.pth episodes=512
  dofbot-rl export format=onnx verify=True
  dofbot-rl bench sizes=64,512,2048 train_epochs=3
  dofbot-rl serve --arm armlib"""


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr)
    for noisy in ("matplotlib", "PIL", "rl_games", "h5py", "OpenGL"):  # OpenGL: INFO lines of a missing libOSMesa
        logging.getLogger(noisy).setLevel(logging.WARNING)




# ----------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------
def _with_checkpoint(cfg, checkpoint):
    """``cfg`` (read-only) with ``checkpoint`` set to the resolved path (``checkpoint=last``)."""
    import copy

    from omegaconf import OmegaConf

    cfg = copy.deepcopy(cfg)
    OmegaConf.set_readonly(cfg, False)
    cfg.checkpoint = str(checkpoint) if checkpoint else ""
    OmegaConf.set_readonly(cfg, True)
    return cfg


def cmd_train(args: Sequence[str]) -> int:
    """Train PPO (resume with checkpoint=PATH or checkpoint=last); ends with the checkpoint path, the
    learning curve and a summary line. multi_gpu=True under torchrun: one rank of a several-process run."""
    gc.disable()  # during start-up: see _end_startup_gc
    try:
        from dofbot_rl.config import load_config
        from dofbot_rl.rl import distributed
        from dofbot_rl.rl.play import resolve_checkpoint

        cfg = load_config(list(args), command="train")
        if cfg.test:
            gc.enable()
            return cmd_play(args)
        cfg = _with_checkpoint(cfg, resolve_checkpoint(cfg, required=False))
        cfg, rank = distributed.setup(cfg)  # multi_gpu=True: this torchrun rank's device, seed, process group
        if not rank.is_main:  # on_progress (which ends the start-up's GC pause) runs on rank 0 alone
            gc.enable()
        try:
            return _train(cfg, rank)
        finally:
            distributed.destroy_process_group()
    finally:
        gc.enable()


def _end_startup_gc() -> None:
    """End ``train``'s start-up pause of Python's cyclic garbage collector (at the first epoch).

    Start-up creates over half a million long-lived objects (torch, rl_games, warp's parsed
    kernels, the task), and the collector, triggered by allocations, scans them again and again
    while they are made: 0.3-0.7 s of a 2.5 s import on the 2-core CPU machine, 1.3-2 s of the
    time to 90 % success on an H200 (docs/benchmarks.md, "GPU: start-up"). ``gc.freeze`` moves them to the permanent generation
    (no scan, unlike a collection, ~0.3 s here) before the collector is switched back on; the
    start-up's own unreachable cycles (~20k objects, a few MB) are not freed.
    """
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _train(cfg, rank) -> int:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from dofbot_rl.rl.trainer import Trainer, startup_line

    if not rank.is_main:  # rank 0 reports for the whole run
        logging.getLogger("dofbot_rl").setLevel(logging.WARNING)
    bar = None  # made at the first epoch (rank 0 only): a checkpoint refused before training leaves one error line
    last = {}

    def on_progress(p):
        nonlocal bar
        if bar is None:
            _end_startup_gc()
            log.info("start-up: %s", startup_line(trainer.startup))  # apart from the training figures
            bar = tqdm(total=int(cfg.max_iterations), unit="epoch", file=sys.stderr, dynamic_ncols=True)
        for key in ("mean_reward", "goals_per_episode", "success_rate"):
            value = getattr(p, key)
            if not math.isnan(value):
                last[key] = value
        bar.total, bar.n = p.max_epochs, p.epoch  # a resume ends at its start epoch + max_iterations
        bar.set_postfix_str(f"reward {format_value(last.get('mean_reward'), '.1f')} | goals/ep {format_value(last.get('goals_per_episode'), '.1f')}"
                            f" | success {format_value(last.get('success_rate'), '.0%')} | {p.env_steps_per_s:,.0f} env-steps/s")
        bar.refresh()

    trainer = Trainer(cfg, on_progress=on_progress, quiet=True, rank=rank)
    trainer.preflight()  # what training would refuse, refused before the "training ..." line: the error is the only line
    ranks = f" x {rank.world_size} ranks" if rank.world_size > 1 else ""
    log.info("training %s: %d envs%s on %s, %d epochs -> %s/%s%s", cfg.task.name, cfg.num_envs, ranks, cfg.sim_device,
             cfg.max_iterations, cfg.train_dir, cfg.experiment, f" (resuming {cfg.checkpoint})" if cfg.checkpoint else "")

    def first_ctrl_c(signum, frame):  # stop cleanly: rl_games ends the epoch and writes a checkpoint
        log.info("\nCtrl+C: stopping after this epoch and writing a checkpoint (Ctrl+C again aborts)")
        trainer.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first_ctrl_c)
    try:
        with logging_redirect_tqdm():  # log lines above the bar, not glued to its end
            result = trainer.train()
    except KeyboardInterrupt:
        log.info("aborted: checkpoints already written are in %s/nn", trainer.experiment_dir)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
        if bar is not None:
            bar.close()
    if not rank.is_main:
        return 0
    log.info("checkpoint: %s", result.checkpoint)
    if result.curve:
        log.info("learning curve: %s", result.curve)
    log.info("tensorboard: tensorboard --logdir %s", result.experiment_dir / "summaries")
    log.info("resume (%d more epochs): dofbot-rl train checkpoint=last experiment=%s train_dir=%s max_iterations=%d",
             int(cfg.max_iterations), cfg.experiment, cfg.train_dir, int(cfg.max_iterations))
    print(f"checkpoint={result.checkpoint} goals_per_episode={format_value(last.get('goals_per_episode'), '.3f')} "
          f"success_rate={format_value(last.get('success_rate'), '.4f')} epochs={result.history[-1].epoch if result.history else 0}")
    return 0


def cmd_play(args: Sequence[str]) -> int:
    """Play a checkpoint (default: the newest of the experiment, else the shipped one) and report success;
    teleop=True drives env 0 from the keyboard until Ctrl+C."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from dofbot_rl.config import load_config
    from dofbot_rl.rl.checkpoints import validate_for_config
    from dofbot_rl.rl.play import evaluate, resolve_checkpoint
    from dofbot_rl.tasks import TASKS

    cfg = load_config(list(args) + ["test=True"], command="play")
    import_mujoco(gl=bool(cfg.render))  # only render=True touches OpenGL (dofbot_rl.mujoco_gl)
    checkpoint = resolve_checkpoint(cfg)
    task_cls = TASKS[cfg.task.name]
    validate_for_config(checkpoint, cfg, task_cls.num_observations, task_cls.num_actions)
    log.info("playing %s on %d envs (%s)%s", checkpoint, cfg.num_envs, cfg.sim_device,
             ": Ctrl+C ends" if cfg.teleop else "")
    hooks = _PlayHooks(cfg)
    bar = None

    def progress(done, total):
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="step", file=sys.stderr, dynamic_ncols=True)
        bar.total = total
        bar.n = done
        if done % 20 == 0 or done == total:
            bar.refresh()

    try:
        with hooks, logging_redirect_tqdm():
            result = evaluate(cfg, checkpoint, on_step=hooks.on_step if hooks.active else None,
                              progress=None if cfg.teleop else progress, quiet=True, until_interrupted=bool(cfg.teleop))
    finally:
        if bar is not None:
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
        self.link = None  # the sim-to-real link, as the panel's (dofbot_rl.sim2real.link)
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
            from dofbot_rl.sim2real.link import Sim2RealLink

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

    cfg = load_config(list(args), command="bench")
    default_sizes = [64, 512, 2048] if cfg.sim_device == "cpu" else [1024, 4096, 16384, 65536]
    sizes = list(cfg.bench.sizes) or default_sizes
    log.info("benchmarking on %s: num_envs %s", cfg.sim_device, sizes)
    rows = run_bench(cfg, sizes, seconds=float(cfg.bench.seconds), train_epochs=int(cfg.bench.train_epochs),
                     json_path=cfg.bench.json or None,
                     on_row=lambda r: log.info("num_envs=%d physics %.0f task %.0f env-steps/s", r.num_envs,
                                               r.physics_steps_per_s, r.task_steps_per_s))
    print(format_table(rows))
    best = max(rows, key=lambda r: r.task_steps_per_s)
    print(f"env_steps_per_s={best.task_steps_per_s:.1f} overhead_ratio={best.overhead_ratio:.3f} "
          f"num_envs={best.num_envs} device={best.device}")
    return 0


def cmd_export(args: Sequence[str]) -> int:
    """Export a checkpoint's deterministic policy to ONNX / TorchScript / npz and verify it (docs/deploy.md)."""
    from dofbot_rl.rl import export

    return export.main(args)


def cmd_serve(args: Sequence[str]) -> int:
    """Run the sim-to-real server on the Dofbot's Jetson (its own options: dofbot-rl serve --help)."""
    from dofbot_rl.sim2real import server

    return server.main(list(args)) or 0


#: Where ``bundle-server`` writes without an argument (``runs/`` is git-ignored).
DEFAULT_BUNDLE = Path("runs") / "dofbot_server.pyz"


def cmd_bundle_server(args: Sequence[str]) -> int:
    """Write the one-file server zipapp to copy to the Dofbot's Jetson (default runs/dofbot_server.pyz)."""
    from dofbot_rl.sim2real.bundle import build_server_zipapp

    if len(args) > 1 or any(a.startswith("-") for a in args):
        raise UsageError("usage: dofbot-rl bundle-server [OUT.pyz]")
    path = Path(args[0]).expanduser() if args else DEFAULT_BUNDLE
    if path.is_dir():
        raise UsageError(f"bundle-server: {path} is a directory: give a file name such as {path / 'dofbot_server.pyz'}")
    if not args:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise UsageError(f"bundle-server: no directory {path.parent} to write {path.name} into")
    try:
        build_server_zipapp(str(path))
    except OSError as exc:
        raise UsageError(f"bundle-server: cannot write {path}: {exc.strerror or exc}") from None
    print(f"wrote {path}: copy it to the Jetson and run `python3 {path.name} --arm armlib`")
    return 0


def cmd_studio(args: Sequence[str]) -> int:
    """The RL Examples panel in a web browser (its own options: dofbot-rl studio --help)."""
    from dofbot_rl.studio.serve import main as studio_main

    return studio_main(args)


def cmd_assets(args: Sequence[str]) -> int:
    """Regenerate data/robots/dofbot/ (MJCF, URDF) from dofbot_rl.robot."""
    from dofbot_rl.assets import write_models

    if args:
        raise UsageError("usage: dofbot-rl assets (no options)")
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


# ----------------------------------------------------------------------------------
# Help
# ----------------------------------------------------------------------------------
#: Option groups shown by ``dofbot-rl COMMAND --help``: (title, section class name, key prefix, top-level keys).
_COMMON_KEYS = ("task", "experiment", "num_envs", "seed", "sim_device", "rl_device", "physics", "checkpoint",
                "train_dir", "headless")
_HELP = {
    "train": (("max_iterations", "torch_deterministic", "test"), ()),
    "play": (("episodes", "teleop", "render"), ("sim2real",)),
    "export": ((), ("export",)),
    "bench": ((), ("bench",)),
}


def _first_line(text: str) -> str:
    return " ".join((text or "").strip().split("\n\n")[0].split())


def _option_lines(rows) -> str:
    lines = []
    for key, default, doc in rows:
        head = f"  {key}={'null' if default is None else default}"
        body = textwrap.wrap(doc, 90) or [""]
        if len(head) < 32:
            lines.append(f"{head:<32}{body[0]}")
        else:
            lines += [head, " " * 32 + body[0]]
        lines += [" " * 32 + more for more in body[1:]]
    return "\n".join(lines)


def usage() -> str:
    """``dofbot-rl --help``: the commands with one line each."""
    lines = ["usage: dofbot-rl COMMAND [key=value ...] [-v]", "", "commands:"]
    lines += [f"  {name:<15}{_first_line(fn.__doc__)}" for name, fn in COMMANDS.items()]
    lines += ["", "`dofbot-rl COMMAND --help` lists a command's options; -v logs at DEBUG level.", "", EXAMPLES]
    return "\n".join(lines)


def command_help(command: str) -> str:
    """``dofbot-rl COMMAND --help``: the command's options with defaults, from the config schema's field docs."""
    from dofbot_rl import config as C

    if command not in _HELP:
        return f"usage: dofbot-rl {command}{' [OUT.pyz]' if command == 'bundle-server' else ''}\n\n" \
               f"{_first_line(COMMANDS[command].__doc__)}"
    keys, sections = _HELP[command]
    main_rows = {key: (key, default, doc) for key, default, doc in C.options_table(C.MainConfig)}
    main_rows["task"] = ("task", "DofbotReacher", f"the task: {', '.join(C._task_names())}")
    parts = [f"usage: dofbot-rl {command} [key=value ...]", "", _first_line(COMMANDS[command].__doc__), ""]
    for name in sections:
        cls = type(getattr(C.MainConfig(), name))
        short = name in C.COMMAND_SECTIONS.values()
        title = f"{name} options" + (f" (also {name}.KEY=...)" if short else "")
        parts += [f"{title}:", _option_lines(C.options_table(cls, "" if short else f"{name}.")), ""]
    parts += ["options:", _option_lines(main_rows[k] for k in keys + _COMMON_KEYS if k in main_rows), ""]
    parts += ["every task and PPO setting: task.env.*, task.sim.*, task.randomization.*, task.teleop.*, "
              "train.params.config.* (config/; docs/training.md)"]
    return "\n".join(parts)


def main(argv: Sequence[str] = None) -> int:
    """Entry point of the ``dofbot-rl`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"dofbot-rl: error: unknown command {command!r}; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if command not in ("serve", "studio") and any(a in ("-h", "--help") for a in rest):  # these two: own parsers
        print(command_help(command))
        return 0
    verbose = "-v" in rest
    rest = [a for a in rest if a != "-v"] if command != "serve" else rest
    if command != "serve":  # the server configures its own logging (--log-file, --log-level)
        _setup_logging(verbose)
    try:
        if command != "play":  # play decides after reading render= (cmd_play)
            import_mujoco(gl=False)
        return COMMANDS[command](rest)
    except USER_ERRORS as exc:
        print(f"dofbot-rl: error: {exc}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:  # torch reports a failed allocation as a RuntimeError
        if not out_of_memory(exc):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"dofbot-rl: error: out of memory: {first[:200]}; lower num_envs (or free the device)", file=sys.stderr)
        return 2


def out_of_memory(exc: BaseException) -> bool:
    """True when ``exc`` is a failed allocation: ``MemoryError``, ``torch.OutOfMemoryError``
    (CUDA), or the RuntimeError of torch's CPU allocator ("can't allocate memory")."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
