"""The sim loop: a coroutine on Kit's event loop that pumps the panel once per app update.

Each update it calls :meth:`dofbot_rl.panel.PanelModel.tick`, which serves the rl_games
worker's requests (control steps) within the render mode's budget, or jogs the selected
robot when nothing runs. The toolbar's timeline rules it, as in OmniIsaacGymEnvs'
``VecEnvMT.run``: *Pause* pauses the run (no steps; the worker waits, up to the bridge
timeout) and *Play* resumes it; *Stop* invalidates PhysX's views, so a run ends at once
(checkpoints already written are kept) and the scene is unloaded (press Load again).
While a scene is loaded, ``/app/player/playSimulations`` is re-asserted off each update
(other code's ``play_async``/``render_async`` turn it on) and restored on any failure. After the steps it
moves the goal / tip markers (when the viewport renders) and applies the render mode's
viewport setting when it changes. It never raises into Kit's loop: an unexpected error is
logged with carb and shown in the panel's status, and the loop goes on.
"""

import asyncio
import traceback
from typing import Optional

import carb
import omni.kit.app

from dofbot_rl.app import compat
from dofbot_rl.panel.render import render_mode


class SimLoop:
    """Runs ``model.tick()`` every app update while started.

    Args:
        model: the panel model.
    """

    def __init__(self, model):
        self.model = model
        self._task: Optional[asyncio.Future] = None
        self._viewport_on: Optional[bool] = None

    @property
    def running(self) -> bool:
        """True while the coroutine is scheduled."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Schedule the coroutine (kept; see :meth:`stop`)."""
        if not self.running:
            self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        """Cancel the coroutine and give the viewport back."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._viewport_on is False:
            compat.set_viewport_updates(True)
        self._viewport_on = None

    async def _run(self) -> None:
        app = omni.kit.app.get_app()
        while True:
            await app.next_update_async()
            try:
                self._update()
            except Exception as exc:  # keep the loop alive; show and log
                carb.log_error(f"dofbot.rl_examples sim loop: {traceback.format_exc()}")
                self.model._error("Sim loop", exc)

    def _update(self) -> None:
        self.model.poll_worker()  # a worker ended by unload/stage close is watched here, never joined
        mode = render_mode(self.model.settings.render_mode)
        running = self.model.state.value in ("training", "stopping", "testing")
        viewport_on = mode.viewport or not running
        came_back = viewport_on and self._viewport_on is False  # markers are stale as the robots were
        if viewport_on != self._viewport_on:
            compat.set_viewport_updates(viewport_on)
            self._viewport_on = viewport_on
        physics = self.model.session.physics
        if physics is not None and not self._timeline_allows_steps(running):
            return
        if physics is not None and hasattr(physics, "set_viewport_sync"):
            physics.set_viewport_sync(viewport_on)  # pushes the robots' state once when it comes back
        if physics is not None:
            compat.app_steps_physics(False)
            try:
                steps = self.model.tick()
            except BaseException:
                compat.app_steps_physics(True)
                raise
        else:
            steps = self.model.tick()
        task = self.model.session.task
        if (steps or came_back) and viewport_on and task is not None and hasattr(physics, "update_markers"):
            physics.update_markers(task.goal_pos_env, task.tip_pos_env)

    def _timeline_allows_steps(self, running: bool) -> bool:
        """Pause: no steps (False). Stop: end the run now, unload the scene (False once done)."""
        timeline = compat.timeline()
        if timeline.is_playing():
            return True
        if not timeline.is_stopped():
            return False  # paused: the run waits
        if running:
            saved = self.model.session.checkpoint_now()  # the weights as they are: no epoch can finish now
            self.model.session.stop(graceful=False)  # the views are invalid: no more steps
            if saved is not None:
                self.model._info(f"The timeline was stopped: the run ended; its weights are in {saved.name}.")
            self.model.tick()  # serves nothing (the bridge is stopped); finishes the run when the worker ended
            return False
        self.model.unload()
        self.model._info("The timeline was stopped, which ends PhysX's simulation of the scene: press Load again.")
        return False
