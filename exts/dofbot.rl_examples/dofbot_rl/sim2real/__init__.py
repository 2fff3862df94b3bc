"""Sim-to-real link between the simulator and a real Yahboom Dofbot.

Modules (all standard library only and Python 3.6 compatible, so the server side runs
on the Dofbot's Jetson Nano):

* :mod:`~dofbot_rl.sim2real.protocol` - the v1 and legacy wire formats;
* :mod:`~dofbot_rl.sim2real.client` - :class:`Sim2RealClient`, the non-blocking sender;
* :mod:`~dofbot_rl.sim2real.server` - the server and its safety rules (``main(argv)``);
* :mod:`~dofbot_rl.sim2real.arms` - Yahboom ``Arm_Lib`` and simulated arm drivers;
* :mod:`~dofbot_rl.sim2real.bundle` - the one-file server for the Jetson;
* :mod:`~dofbot_rl.sim2real.stress` - hostile-input and hold-latency measurements.

See ``docs/sim2real.md``.
"""

from .client import Sim2RealClient, Sim2RealConfig, Sim2RealError

__all__ = ["Sim2RealClient", "Sim2RealConfig", "Sim2RealError"]
