"""The RL Examples panel as a web page: viser widgets and a 3D view bound to the panel model.

Threading, as in Kit: the thread that calls :meth:`Studio.run` owns the
:class:`~dofbot_rl.panel.PanelModel` (it ticks the model, which serves the rl_games worker,
and draws the scene); viser runs its web server on its own thread and calls the widget
callbacks from a thread pool, which only *post* work to the owning thread
(:meth:`Studio.post`). Nothing here decides what a button does: the model does.
"""

import logging
import math
import queue
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np

from dofbot_rl.panel import PanelModel, PanelState
from dofbot_rl.panel.settings import SIM2REAL_MODES
from dofbot_rl.scene import GOAL_OPACITY, GOAL_RADIUS, TIP_RADIUS
from dofbot_rl.studio.scene import GOAL_RGB, SELECTED_RGB, TIP_RGB, RobotGeometry, sphere_mesh
from dofbot_rl.teleop.picking import DEFAULT_ENV_ROOT, DEFAULT_ROBOT_NAME

log = logging.getLogger(__name__)

#: Jog buttons: (key, label); the page's key handler presses the button whose label starts with ``[KEY]``.
JOG_BUTTONS = (("Q", "joint1 -"), ("A", "joint1 +"), ("W", "joint2 -"), ("S", "joint2 +"), ("E", "joint3 -"),
               ("D", "joint3 +"), ("R", "joint4 -"), ("F", "joint4 +"), ("T", "joint5 -"), ("G", "joint5 +"),
               ("Y", "gripper open"), ("H", "gripper close"))
#: Hold messages per second a pressed jog button sends; a key counts as released when they stop.
HOLD_HZ = 20.0
_HOLD_TIMEOUT_S = 3.0 / HOLD_HZ

#: The page's key handler (viser has no key events): a key held outside text fields presses and
#: releases the matching on-screen jog button, Esc presses Release. It listens first (window,
#: capture phase) and keeps the keys it uses from viser's own WASD/QE camera keys. Installed
#: once per page by an ``onerror`` attribute, the only way to run script in viser's HTML widget.
_KEY_SCRIPT = (
    "if(!window.dofbotKeys){window.dofbotKeys=1;var held={};"
    "function btn(k){var b=document.querySelectorAll('button');for(var i=0;i<b.length;i++)"
    "{if(b[i].textContent.trim().indexOf('['+k+']')==0)return b[i];}return null;}"
    "function name(e){return e.key.length==1?e.key.toUpperCase():(e.key=='Escape'?'Esc':e.key);}"
    "function typing(e){var t=e.target;return t&&(t.tagName=='INPUT'||t.tagName=='TEXTAREA'||t.isContentEditable);}"
    "function ev(b,t){b.dispatchEvent(new PointerEvent(t,{bubbles:true,button:0,pointerId:7,isPrimary:true}));}"
    "window.addEventListener('keydown',function(e){if(typing(e))return;var k=name(e);var b=btn(k);if(!b)return;"
    "e.preventDefault();e.stopImmediatePropagation();if(k=='Esc'||k=='Z'){if(!e.repeat)b.click();return;}"
    "if(held[k])return;held[k]=1;ev(b,'pointerdown');},true);"
    "window.addEventListener('keyup',function(e){var k=name(e);if(!held[k])return;e.stopImmediatePropagation();"
    "delete held[k];var b=btn(k);if(b)ev(b,'pointerup');},true);"
    "window.addEventListener('blur',function(){for(var k in held){var b=btn(k);if(b)ev(b,'pointerup');}held={};});}"
)


#: Most share of wall time the 3D view may take on the model's thread: frames are spaced so
#: that (recent drawing time per frame) / (time between frames) stays below it.
DRAW_BUDGET = 0.05

#: Vertical field of view of the 3D view (deg).
CAMERA_FOV_DEG = 45.0
#: Narrowest 3D view (width / height) the first camera frames every robot in: the panel is
#: docked to the right of the view, so on a 1280 x 800 window the view is ~890 x 800.
MIN_VIEW_ASPECT = 1.0
#: The space a robot can take around its base (m): reach in x and y, height.
_ROBOT_REACH_M, _ROBOT_HEIGHT_M = 0.35, 0.45
#: The camera looks along this direction's opposite (from the front right, 31 deg down).
_CAMERA_DIRECTION = np.array([1.2, -1.2, 1.0]) / np.linalg.norm([1.2, -1.2, 1.0])


def camera_view(origins: np.ndarray):
    """``(position, look_at)`` (m, world) of the camera that first shows robots at ``origins``
    ``(N, 3)``: every robot whole in a view of :data:`CAMERA_FOV_DEG` vertical field of view
    and at least :data:`MIN_VIEW_ASPECT` wide, seen from :data:`_CAMERA_DIRECTION`."""
    origins = np.asarray(origins, dtype=np.float64)
    lo = origins.min(0) - [_ROBOT_REACH_M, _ROBOT_REACH_M, 0.0]
    hi = origins.max(0) + [_ROBOT_REACH_M, _ROBOT_REACH_M, _ROBOT_HEIGHT_M]
    look_at = 0.5 * (lo + hi)
    forward = -_CAMERA_DIRECTION
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    corners = np.array(np.meshgrid(*zip(lo, hi))).reshape(3, -1).T - look_at  # (8, 3)
    tan_v = 0.95 * math.tan(math.radians(CAMERA_FOV_DEG) / 2)  # a 2.5 % margin on each side
    # a corner p is in view at distance d when |p.right| <= aspect tan_v (p.forward + d), |p.up| <= tan_v (...)
    need = np.maximum(np.abs(corners @ right) / (MIN_VIEW_ASPECT * tan_v), np.abs(corners @ up) / tan_v)
    distance = float((need - corners @ forward).max())
    return tuple(look_at + distance * _CAMERA_DIRECTION), tuple(look_at)


class Studio:
    """The panel's widgets and 3D view on a viser server, driven by ``model``.

    Args:
        model: the panel model (owned by the thread that calls :meth:`run`).
        server: a started ``viser.ViserServer``.
        fps: most 3D view updates per second (while a browser is connected).
    """

    def __init__(self, model: PanelModel, server, fps: float = 20.0):
        if not (fps > 0 and math.isfinite(fps)):
            raise ValueError(f"fps must be > 0, got {fps}")
        self.model = model
        self.server = server
        self.fps = float(fps)
        self.geometry = RobotGeometry()
        self._calls: "queue.SimpleQueue[Callable[[], None]]" = queue.SimpleQueue()
        self._stop = threading.Event()
        self._dirty = True
        self._held: Dict[str, float] = {}  # jog key -> monotonic time of its last hold message
        self._scene_task = None  # the task the 3D meshes were built for
        self._links = []
        self._halos = []  # per link, one instance: the selected robot's orange shell
        self._halo_shown = False
        self._markers = {}
        self._curve_len = -1
        self.control_steps = 0  #: control steps run by :meth:`step` (for the benchmark)
        self.frames_drawn = 0  #: 3D updates sent (for the benchmark)
        self.draw_s = 0.0  #: time spent in :meth:`draw` on the model's thread (s, for the benchmark)
        self.ui_cpu_s = 0.0  #: CPU time of :meth:`draw` and :meth:`sync_widgets` on the model's thread (s)
        self._draw_cost_s = 0.0  # recent drawing time per frame sent (s, moving average)
        self._drawn_state = None  # what the last frame showed: (dof_pos, goals, tips, selected)
        self._next_frame = self._next_sync = self._last_sync = self._next_idle = 0.0
        self._unsubscribe = model.subscribe(self._mark_dirty)
        self._unsubscribe_errors = model.subscribe_errors(lambda text: log.error("%s", text))
        self._build_gui()
        server.scene.configure_default_lights(cast_shadow=False)  # shadows cost the most on software WebGL
        # no floor: a full-screen shaded plane (or viser's grid) drops software WebGL to ~1 frame/s

    # ------------------------------------------------------------------------------
    # Threads
    # ------------------------------------------------------------------------------
    def post(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on the model's thread at its next iteration (callable from any thread)."""
        self._calls.put(fn)

    def stop(self) -> None:
        """Make :meth:`run` return (from any thread)."""
        self._stop.set()

    def _mark_dirty(self) -> None:
        self._dirty = True

    def run(self, until: Optional[Callable[[], bool]] = None) -> None:
        """The sim loop: :meth:`step` until :meth:`stop` (or ``until()`` is true). Returns with
        the model shut down (any run stopped, the link closed)."""
        try:
            while not self._stop.is_set() and not (until is not None and until()):
                if not self.step():
                    time.sleep(0.005)
        finally:
            self._unsubscribe()
            self._unsubscribe_errors()
            self.model.shutdown()

    def step(self) -> int:
        """One iteration of the sim loop: posted calls, ``model.tick()`` (idle ticks paced to the
        control step), the 3D view at most :attr:`fps` times a second while a browser is
        connected, the widgets at most 20 and at least 4 times a second. Returns control steps run."""
        self._drain()
        self._release_stale_keys()
        now = time.monotonic()
        steps = 0
        if self.model.state == PanelState.LOADED:
            if now >= self._next_idle:  # jog in real time while nothing runs
                steps = self.model.tick()
                self._next_idle = now + self.model.session.task.control_dt
        else:
            steps = self.model.tick()
        now = time.monotonic()
        cpu = time.thread_time()
        if now >= self._next_frame and self.server.get_clients():
            drawn_before = self.draw_s
            if self.draw():
                cost = self.draw_s - drawn_before  # draw() times itself
                self._draw_cost_s = cost if not self._draw_cost_s else 0.7 * self._draw_cost_s + 0.3 * cost
            self._next_frame = now + max(1.0 / self.fps, self._draw_cost_s / DRAW_BUDGET)
        if now >= self._next_sync or (self._dirty and now >= self._last_sync + 0.05):
            self.sync_widgets()
            self._last_sync, self._next_sync = now, now + 0.25
        self.ui_cpu_s += time.thread_time() - cpu
        self.control_steps += steps
        return steps

    def _drain(self) -> None:
        while True:
            try:
                fn = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                fn()
            except Exception as exc:  # a widget's action failed: shown like any panel error
                self.model._error("Studio", exc)
            self._dirty = True

    # ------------------------------------------------------------------------------
    # Widgets
    # ------------------------------------------------------------------------------
    def _build_gui(self) -> None:
        gui, m, post = self.server.gui, self.model, self.post
        gui.configure_theme(control_width="large", dark_mode=False, show_logo=False)
        gui.main_panel.dock_right()  # beside the 3D view, not over it: no robot lies under the panel
        self.status = gui.add_markdown("")
        with gui.add_folder("Task", expand_by_default=True):
            self.task = gui.add_dropdown("Task", tuple(m.task_names) or ("-",), initial_value=m.settings.task)
            self.robots = gui.add_text("Robots", str(m.settings.num_envs or m.default_num_envs()))
            self.epochs = gui.add_text("Epochs", str(m.settings.max_iterations),
                                       hint="PPO epochs of the next run; 0: the config's default")
            self.render = gui.add_dropdown("Rendering", tuple(m.render_mode_names), initial_value=m.settings.render_mode)
            self.input_error = gui.add_markdown("")
        self.task.on_update(lambda e: post(lambda v=self.task.value: m.set_task(v)))
        self.robots.on_update(lambda e: post(lambda v=self.robots.value: m.set_num_envs(v)))
        self.epochs.on_update(lambda e: post(lambda v=self.epochs.value: m.set_max_iterations(v)))
        self.render.on_update(lambda e: post(lambda v=self.render.value: m.set_render_mode(v)))

        self.buttons = {}
        with gui.add_folder("Run", expand_by_default=True):
            for name, state in m.buttons().items():
                button = gui.add_button(state.label, disabled=not state.enabled, hint=state.tooltip)
                button.on_click(lambda e, n=name: post(lambda: m.press(n)))
                self.buttons[name] = button
            self.progress = gui.add_progress_bar(0.0)
            self.figures = gui.add_markdown("")
            self.curve = gui.add_uplot((np.zeros(1), np.zeros(1)), ({"label": "env-steps"}, {"label": "mean reward", "stroke": "#1c7ed6"}),
                                       title="Learning curve", aspect=1.6,
                                       scales={"x": {"time": False}},
                                       axes=({}, {"size": 72}))  # uPlot's 50 px cut the "-" off "-117.5"
        with gui.add_folder("Checkpoints", expand_by_default=True):
            self.checkpoints = gui.add_dropdown("Checkpoint", ("(none)",))
            self.checkpoint_note = gui.add_markdown("")
            self.refresh = gui.add_button("Refresh list")
            self.path = gui.add_text("File on server", "")
            self.open = gui.add_button("Open file")
            self.upload = gui.add_upload_button("Upload .pth", mime_type=".pth")
        self.checkpoints.on_update(lambda e: post(lambda v=self.checkpoints.value: self._choose_checkpoint(v)))
        self.refresh.on_click(lambda e: post(m.refresh_checkpoints))
        self.open.on_click(lambda e: post(lambda v=self.path.value: m.pick_checkpoint_file(v.strip())))
        self.upload.on_upload(lambda e: post(lambda f=self.upload.value: self._uploaded(f)))

        with gui.add_folder("Teleop", expand_by_default=True):
            self.teleop_line = gui.add_markdown("")
            gui.add_html(f'<img src="x:" style="display:none" onerror="{_KEY_SCRIPT}">'
                         "<small>Click a robot, then hold Q/A W/S E/D R/F T/G Y/H (outside text fields) "
                         "or the buttons; Esc releases it.</small>")
            self.jog = {}
            for key, label in JOG_BUTTONS:
                button = gui.add_button(f"[{key}] {label}")
                button.on_hold(lambda e, k=key: post(lambda: self._hold(k)), callback_hz=HOLD_HZ)
                self.jog[key] = button
            self.reset_pose = gui.add_button("[Z] reset pose")
            self.reset_pose.on_click(lambda e: post(lambda: m.key_down(m.session.teleop.bindings.reset_key)))
            self.release = gui.add_button("[Esc] release")
            self.release.on_click(lambda e: post(lambda: m.key_down(m.session.teleop.bindings.release_key)))

        s = m.settings
        with gui.add_folder("Sim2Real", expand_by_default=True):
            self.s2r_on = gui.add_checkbox("Link on", False)
            self.s2r_host = gui.add_text("Host", s.sim2real_host)
            self.s2r_port = gui.add_text("Port", str(s.sim2real_port))
            self.s2r_token = gui.add_text("Token file", s.sim2real_token_file)
            self.s2r_mode = gui.add_dropdown("Mode", SIM2REAL_MODES, initial_value=s.sim2real_mode)
            self.s2r_status = gui.add_markdown("off")
        # only a person's click switches the link (the studio itself unticks it after a failure)
        self.s2r_on.on_update(lambda e: e.client is not None and post(lambda on=self.s2r_on.value: self._toggle_link(on)))
        self._link_shown = False

    def _choose_checkpoint(self, label: str) -> None:
        labels = self.model.catalogue.labels()
        index = labels.index(label) if label in labels else -1
        if index != self.model.catalogue.selected_index:
            self.model.select_checkpoint(index)

    def _uploaded(self, upload) -> None:
        """Keep a checkpoint uploaded from the browser under ``<train_dir>/uploads/`` and select it
        (it is validated like any picked file)."""
        name = Path(upload.name).name
        if not name.endswith(".pth"):
            raise ValueError(f"expected a .pth checkpoint, got {name!r}")
        folder = self.model.train_dir / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        tmp = path.with_suffix(".part")
        tmp.write_bytes(upload.content)
        tmp.replace(path)
        self.model.pick_checkpoint_file(path)

    def _toggle_link(self, on: bool) -> None:
        m = self.model
        if on == m.sim2real.enabled:
            return
        m.set_sim2real(on, host=self.s2r_host.value.strip(), port=self.s2r_port.value.strip(),
                       token_file=self.s2r_token.value.strip(), mode=self.s2r_mode.value)

    def _hold(self, key: str) -> None:
        if self.model.key_down(key):
            self._held[key] = time.monotonic()

    def _release_stale_keys(self) -> None:
        now = time.monotonic()
        for key, last in list(self._held.items()):
            if now - last > _HOLD_TIMEOUT_S:
                del self._held[key]
                self.model.key_up(key)

    @staticmethod
    def _set(handle, attr: str, value) -> None:
        if getattr(handle, attr) != value:
            setattr(handle, attr, value)

    def sync_widgets(self) -> None:
        """Make every widget show the model's state (sends only what changed)."""
        m, set_ = self.model, self._set
        self._dirty = False
        color = {"error": "#c92a2a", "busy": "#1864ab", "ok": "#2b8a3e"}.get(m.status.level, "#343a40")
        set_(self.status, "content", f'<b style="color:{color}">{m.status.text}</b>')
        for name, state in m.buttons().items():
            button = self.buttons[name]
            set_(button, "label", state.label)
            set_(button, "disabled", not state.enabled)
            set_(button, "hint", state.tooltip)
        editable = m.inputs_enabled
        for handle in (self.task, self.robots, self.epochs):
            set_(handle, "disabled", not editable)
        set_(self.input_error, "content", "\n\n".join(f'<b style="color:#c92a2a">{v}</b>' for v in m.input_errors.values()))
        set_(self.progress, "value", round(100.0 * m.figures.progress_fraction, 1))
        set_(self.figures, "content", "\n".join(f"- {k}: **{v}**" for k, v in m.figures.lines()))
        if len(m.curve.points) != self._curve_len:
            self._curve_len = len(m.curve.points)
            pts = m.curve.points or [(0, 0.0)]
            self.curve.data = (np.array([p[0] for p in pts], dtype=np.float64), np.array([p[1] for p in pts], dtype=np.float64))
        labels = tuple(m.catalogue.labels()) or ("(none)",)
        set_(self.checkpoints, "options", labels)
        index = m.catalogue.selected_index
        set_(self.checkpoints, "value", labels[index] if index >= 0 else labels[0])
        set_(self.checkpoint_note, "content", m.catalogue.message)
        set_(self.teleop_line, "content", m.teleop_line())
        if m.sim2real.enabled != self._link_shown:  # follow the link's changes, never fight a click in flight
            self._link_shown = m.sim2real.enabled
            set_(self.s2r_on, "value", self._link_shown)
        elif not m.sim2real.enabled and m.sim2real.error and self.s2r_on.value:
            set_(self.s2r_on, "value", False)  # a switch-on that failed at once (bad port, token file)
        set_(self.s2r_status, "content", f"Link: **{m.sim2real.status()}**")

    # ------------------------------------------------------------------------------
    # 3D view
    # ------------------------------------------------------------------------------
    def draw(self) -> bool:
        """Send the robots' link poses and the goal / fingertip markers (batched, one message per
        mesh), unless nothing moved since the last frame. Returns whether a frame was sent."""
        start = time.perf_counter()
        task = self.model.session.task
        if task is not self._scene_task:
            self._build_scene(task)
            self._drawn_state = None
        if task is None:
            return False
        dof_pos = task.dof_pos.detach().cpu().numpy()
        goals, tips = task.goal_pos_env.detach().cpu().numpy(), task.tip_pos_env.detach().cpu().numpy()
        selected = self.model.session.teleop.selected_env
        last = self._drawn_state
        if (last is not None and last[3] == selected and np.array_equal(last[0], dof_pos)
                and np.array_equal(last[1], goals) and np.array_equal(last[2], tips)):
            return False
        self._drawn_state = (dof_pos.copy(), goals.copy(), tips.copy(), selected)
        origins = self.model.session.physics.env_origins.detach().cpu().numpy()
        poses = self.geometry.geom_poses(dof_pos, origins)
        with self.server.atomic():
            for handle, (pos, wxyz) in zip(self._links, poses):
                handle.batched_positions = pos
                handle.batched_wxyzs = wxyz
            self._markers["goal"].batched_positions = (origins + goals).astype(np.float32)
            self._markers["tip"].batched_positions = (origins + tips).astype(np.float32)
            if selected is not None and selected < task.num_envs:  # an orange shell around the selected robot
                for halo, (pos, wxyz) in zip(self._halos, poses):
                    halo.batched_positions, halo.batched_wxyzs = pos[selected:selected + 1], wxyz[selected:selected + 1]
            if (selected is not None) != self._halo_shown:
                self._halo_shown = selected is not None
                for halo in self._halos:
                    halo.visible = self._halo_shown
        self.frames_drawn += 1
        self.draw_s += time.perf_counter() - start
        return True

    def _build_scene(self, task) -> None:
        for handle in self._links + self._halos + list(self._markers.values()):
            handle.remove()
        self._links, self._halos, self._markers, self._scene_task, self._halo_shown = [], [], {}, task, False
        if task is None:
            return
        n = task.num_envs
        ident = np.tile(np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32), (n, 1))
        zeros = np.zeros((n, 3), dtype=np.float32)
        for geom in self.geometry.geoms:
            handle = self.server.scene.add_batched_meshes_simple(
                f"/robots/{geom.name}", geom.vertices, geom.faces, ident, zeros, batched_colors=geom.rgb, lod="off",
                cast_shadow=False, receive_shadow=False)
            handle.on_click(lambda e: self.post(lambda i=e.instance_index: self._pick(i)))
            self._links.append(handle)
            self._halos.append(self.server.scene.add_batched_meshes_simple(
                f"/selected/{geom.name}", geom.vertices * 1.35, geom.faces, ident[:1], zeros[:1], batched_colors=SELECTED_RGB,
                opacity=0.45, lod="off", cast_shadow=False, receive_shadow=False, visible=False))
        for name, rgb, radius, opacity in (("goal", GOAL_RGB, GOAL_RADIUS, GOAL_OPACITY), ("tip", TIP_RGB, TIP_RADIUS, None)):
            vertices, faces = sphere_mesh(radius)
            self._markers[name] = self.server.scene.add_batched_meshes_simple(
                f"/markers/{name}", vertices, faces, ident, zeros, batched_colors=rgb, opacity=opacity, lod="off",
                cast_shadow=False, receive_shadow=False)
        position, look_at = camera_view(self.model.session.physics.env_origins.detach().cpu().numpy())
        self.server.initial_camera.position, self.server.initial_camera.look_at = position, look_at
        self.server.initial_camera.fov = math.radians(CAMERA_FOV_DEG)
        for client in self.server.get_clients().values():
            client.camera.position, client.camera.look_at = position, look_at
            client.camera.fov = math.radians(CAMERA_FOV_DEG)

    def _pick(self, env_id: Optional[int]) -> None:
        """A robot's link was clicked: select it through the model (same path rule as Kit's picking)."""
        paths = [] if env_id is None else [f"{DEFAULT_ENV_ROOT}/env_{int(env_id)}/{DEFAULT_ROBOT_NAME}"]
        self.model.select_robot_paths(paths)
