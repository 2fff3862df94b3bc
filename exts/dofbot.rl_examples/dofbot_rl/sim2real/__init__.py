"""Sim-to-real link between the simulator and a real Yahboom Dofbot.

Modules (all Python 3.6 compatible, so the server side runs on the Dofbot's Jetson Nano;
standard library only, except the two policy modules, which need numpy):

* :mod:`~dofbot_rl.sim2real.protocol` - the v1 and legacy wire formats;
* :mod:`~dofbot_rl.sim2real.client` - :class:`Sim2RealClient`, the non-blocking sender;
* :mod:`~dofbot_rl.sim2real.server` - the server, its safety rules and policy mode (``main(argv)``);
* :mod:`~dofbot_rl.sim2real.arms` - Yahboom ``Arm_Lib`` and simulated arm drivers;
* :mod:`~dofbot_rl.sim2real.bundle` - the one-file server for the Jetson;
* :mod:`~dofbot_rl.sim2real.stress` - hostile-input and hold-latency measurements;
* :mod:`~dofbot_rl.sim2real.npz_policy`, :mod:`~dofbot_rl.sim2real.onboard` - the exported
  policy in numpy and the controller that runs it on the robot (numpy).

See ``docs/sim2real.md`` and ``docs/deploy.md``.
"""

from .client import ServerError, Sim2RealClient, Sim2RealError

__all__ = ["ServerError", "Sim2RealClient", "Sim2RealError"]
