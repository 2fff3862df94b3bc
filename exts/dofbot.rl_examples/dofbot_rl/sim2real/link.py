"""The simulator side of the link: the panel's Sim2Real toggle and ``dofbot-rl play sim2real...``.

Links the selected robot (env 0 when none is) to a real Dofbot.

Wraps :class:`dofbot_rl.sim2real.Sim2RealClient` (non-blocking, its own thread). While on,
a session step hook runs once per control step, by mode:

* ``sim2real``: sends the robot's joint positions; the client sends the newest at its rate;
* ``goal``: sends the robot's goal when it changes, to a server that runs the exported
  policy itself (``dofbot-rl serve --policy``);
* ``real2sim``: the simulated robot follows the real arm's servo read-back (through the
  task's manual-target seam, like keyboard teleop); switching off hands it back.
"""

import logging
from typing import Any, Callable, Optional

from dofbot_rl.sim2real.protocol import ACK_HOLDING

log = logging.getLogger(__name__)


def _default_factory(mapping):
    from dofbot_rl.sim2real import Sim2RealClient

    return Sim2RealClient.from_config(mapping)


class Sim2RealLink:
    """On/off state, host/port and status light of the sim-to-real link.

    Args:
        client_factory: ``factory(mapping) -> client`` with ``start()``, ``stop()``,
            ``send_joint_positions(q6)``, ``send_goal(xyz)``, ``readback()``, ``state``,
            ``latency_ms``, ``last_error``;
            default :meth:`Sim2RealClient.from_config`.
    """

    def __init__(self, client_factory: Optional[Callable[[dict], Any]] = None):
        self._factory = client_factory or _default_factory
        self.client = None
        self.mode = "sim2real"
        self.error = ""  #: why the last switch-on failed, one line
        self._driven_env = None  # real2sim: the env following the read-back
        self._release = None  # real2sim: env to hand back to the policy at the next step
        self._goal_sent = None

    @property
    def enabled(self) -> bool:
        """True while a client runs."""
        return self.client is not None

    def switch_on(self, host: str, port: int, fail_quietly: bool = True, token_file: str = "",
                  mode: str = "sim2real") -> bool:
        """Start a client to ``host:port`` (it connects and reconnects in the background).

        Args:
            token_file: shared-token file for the v1 hello ("" for none).
            mode: ``sim2real``, ``goal`` or ``real2sim`` (see the module docstring).

        Returns:
            True when started; False with :attr:`error` set for a bad host/port/mode/token file.
        """
        try:
            mapping = {"host": host, "port": int(port), "fail_quietly": fail_quietly, "mode": mode}
            if token_file:
                mapping["token_file"] = token_file
            self.start(mapping)
        except (ValueError, OSError) as exc:
            self.error = f"Sim2Real: {exc}"
            return False
        return True

    def start(self, mapping: dict) -> None:
        """Start a client from a ``sim2real`` config mapping (the keys of
        :class:`dofbot_rl.config.Sim2RealSection`; ``mode`` picks the step hook's work).

        Raises:
            ValueError: a bad key or value; OSError: the client could not start.
        """
        self.switch_off()
        client = self._factory(mapping)
        self.client = client.start() or client
        self.error, self.mode, self._goal_sent = "", mapping.get("mode", "sim2real"), None

    def switch_off(self) -> None:
        """Stop the client (the server holds the arm when the link closes)."""
        self._release, self._driven_env = self._driven_env, None
        client, self.client = self.client, None
        if client is not None:
            client.stop()

    def status(self) -> str:
        """One line: ``off``, or the link state with its latency, ``held`` while the server
        holds the arm (its last ACK says HOLDING: no live target), and the last error unless
        it is connected (the client keeps its last error after a reconnection)."""
        if self.client is None:
            return "off" + (f" ({self.error})" if self.error else "")
        state = str(self.client.state)
        latency = self.client.latency_ms
        text = state + (f", {latency:.1f} ms" if latency is not None else "")
        if state == "connected":
            readback = self.client.readback()
            if readback is not None and getattr(readback, "flags", 0) & ACK_HOLDING:
                text += ", held"
        error = getattr(self.client, "last_error", None)
        return text + (f" ({error})" if error and state != "connected" else "")

    def step_hook(self, selected_env: Callable[[], Optional[int]]):
        """A session step hook sending the selected robot's joint positions (rad)."""

        def hook(task, actions, result):
            if self._release is not None:
                task.set_manual_targets(self._release, None)
                self._release = None
            if self.client is None:
                return
            env_id = selected_env()
            env_id = 0 if env_id is None else env_id
            if self.mode == "goal":
                goal = task.goal_pos_env[env_id].tolist()
                if goal != self._goal_sent:
                    self.client.send_goal(goal)
                    self._goal_sent = goal
            elif self.mode == "real2sim":
                readback = self.client.readback()
                if readback is not None and all(v == v for v in readback.q):  # NaN: a failed servo read
                    if self._driven_env not in (None, env_id):
                        task.set_manual_targets(self._driven_env, None)
                    task.set_manual_targets(env_id, list(readback.q))
                    self._driven_env = env_id
            else:
                self.client.send_joint_positions(task.dof_pos[env_id].tolist())

        return hook
