"""Sim-to-real link between the simulator and a real Yahboom Dofbot.

Modules (all Python 3.6 compatible, so the server side runs on the Dofbot's Jetson Nano;
standard library only, except the two policy modules, which need numpy):

* :mod:`~dofbot_rl.sim2real.protocol` - the v1 and legacy wire formats;
* :mod:`~dofbot_rl.sim2real.client` - :class:`Sim2RealClient`, the non-blocking sender;
* the server, innermost first: :mod:`~dofbot_rl.sim2real.safety` (the servo safety
  layer), :mod:`~dofbot_rl.sim2real.policy_mode` (the onboard policy's pacing loop),
  :mod:`~dofbot_rl.sim2real.tcp_server` (protocol v1 and legacy) and
  :mod:`~dofbot_rl.sim2real.server` (the command line, ``main(argv)``), with
  :mod:`~dofbot_rl.sim2real.cmdline` (checked options shared with the onboard runner);
* :mod:`~dofbot_rl.sim2real.arms` - Yahboom ``Arm_Lib`` and simulated arm drivers;
* :mod:`~dofbot_rl.sim2real.npz_policy`, :mod:`~dofbot_rl.sim2real.onboard` - the exported
  policy in numpy and the controller that runs it on the robot (numpy);
* :mod:`~dofbot_rl.sim2real.bundle` - builds the one-file server for the Jetson (its
  ``RUNTIME_FILES`` are what goes to the robot).

The fuzzer and hold-latency probe live in ``benchmarks/sim2real_fuzz.py``, the evaluation
harness in ``benchmarks/onboard_vs_sim.py``: neither goes to the robot.

See ``docs/sim2real.md`` and ``docs/deploy.md``.
"""

from .client import ServerError, Sim2RealClient, Sim2RealError

__all__ = ["ServerError", "Sim2RealClient", "Sim2RealError"]
