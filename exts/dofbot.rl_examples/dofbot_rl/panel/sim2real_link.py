"""The panel's Sim2Real toggle: mirror the selected robot onto a real Dofbot.

Wraps :class:`dofbot_rl.sim2real.Sim2RealClient` (non-blocking, its own thread). While
on, a session step hook sends the selected robot's joint positions (env 0 when none is
selected) once per control step; the client sends the newest at its own rate.
"""

import logging
from typing import Any, Callable, Optional

log = logging.getLogger(__name__)


def _default_factory(mapping):
    from dofbot_rl.sim2real import Sim2RealClient

    return Sim2RealClient.from_config(mapping)


class Sim2RealLink:
    """On/off state, host/port and status light of the sim-to-real link.

    Args:
        client_factory: ``factory(mapping) -> client`` with ``start()``, ``stop()``,
            ``send_joint_positions(q6)``, ``state``, ``latency_ms``, ``last_error``;
            default :meth:`Sim2RealClient.from_config`.
    """

    def __init__(self, client_factory: Optional[Callable[[dict], Any]] = None):
        self._factory = client_factory or _default_factory
        self.client = None
        self.error = ""  #: why the last switch-on failed, one line

    @property
    def enabled(self) -> bool:
        """True while a client runs."""
        return self.client is not None

    def switch_on(self, host: str, port: int, fail_quietly: bool = True) -> bool:
        """Start a client to ``host:port`` (it connects and reconnects in the background).

        Returns:
            True when started; False with :attr:`error` set for a bad host/port.
        """
        self.switch_off()
        try:
            client = self._factory({"host": host, "port": int(port), "fail_quietly": fail_quietly})
            self.client = client.start() or client
        except (ValueError, OSError) as exc:
            self.client, self.error = None, f"Sim2Real: {exc}"
            return False
        self.error = ""
        return True

    def switch_off(self) -> None:
        """Stop the client (the server holds the arm when the link closes)."""
        client, self.client = self.client, None
        if client is not None:
            client.stop()

    def status(self) -> str:
        """One line: ``off``, or the link state with its latency or error."""
        if self.client is None:
            return "off" + (f" ({self.error})" if self.error else "")
        state = str(self.client.state)
        latency = self.client.latency_ms
        text = state + (f", {latency:.1f} ms" if latency is not None else "")
        error = getattr(self.client, "last_error", None)
        return text + (f" ({error})" if error else "")

    def step_hook(self, selected_env: Callable[[], Optional[int]]):
        """A session step hook sending the selected robot's joint positions (rad)."""

        def hook(task, actions, result):
            if self.client is None:
                return
            env_id = selected_env()
            self.client.send_joint_positions(task.dof_pos[0 if env_id is None else env_id].tolist())

        return hook
