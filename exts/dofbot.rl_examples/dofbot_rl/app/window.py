"""The RL Examples window: omni.ui widgets bound to :class:`dofbot_rl.panel.PanelModel`.

No decisions here: every enabled flag, label, tooltip, list and figure comes from the
model, and every widget event calls one model method. The window refreshes on the
model's change notifications.
"""

from typing import Callable, Dict, Optional

import omni.ui as ui

from dofbot_rl.panel.settings import SIM2REAL_MODES

#: Not "RL Examples": OmniIsaacGymEnvs' window has that title, and both can be enabled (2023.1 gym app).
TITLE = "Dofbot RL Examples"
_STATUS_COLOURS = {"info": 0xFFCCCCCC, "busy": 0xFF55C8FF, "ok": 0xFF66DD66, "error": 0xFF5555FF}  # ABGR
_LABEL_W = 130


class RlExamplesWindow:
    """The dockable panel.

    Args:
        model: the panel model, or ``None`` when the extension cannot run (then only
            ``message`` is shown).
        message: the reason shown when ``model`` is ``None``.
        on_visibility_changed: called with the new visibility (menu tick refresh).
    """

    def __init__(self, model, message: str = "", on_visibility_changed: Optional[Callable[[bool], None]] = None):
        self.model = model
        self.message = message
        self.buttons: Dict[str, ui.Button] = {}
        self._on_visibility_changed = on_visibility_changed
        self._unsubscribe = None
        self._picker = None
        self._shown_labels = None
        self._window = ui.Window(TITLE, width=440, height=0, visible=False, dockPreference=ui.DockPreference.LEFT_BOTTOM)
        self._window.set_visibility_changed_fn(self._visibility_changed)
        self._window.frame.set_build_fn(self._build)
        if model is not None:
            self._unsubscribe = model.subscribe(self.refresh)

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def visible(self) -> bool:
        """Whether the window is shown."""
        return bool(self._window and self._window.visible)

    @visible.setter
    def visible(self, value: bool) -> None:
        self._window.visible = bool(value)

    def _visibility_changed(self, visible: bool) -> None:
        if self._on_visibility_changed is not None:
            self._on_visibility_changed(visible)

    def destroy(self) -> None:
        """Drop the model subscription and the window."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._picker is not None:
            self._picker.destroy()
            self._picker = None
        self.buttons = {}
        if self._window is not None:
            self._window.destroy()
            self._window = None

    # -- building ------------------------------------------------------------------------
    def _build(self) -> None:
        with ui.ScrollingFrame():
            with ui.VStack(spacing=6, height=0):
                if self.model is None:
                    ui.Label(self.message, word_wrap=True, style={"color": _STATUS_COLOURS["error"]})
                    return
                self._build_scene()
                self._build_run()
                self._build_checkpoints()
                self._build_progress()
                self._build_teleop()
                self._status = ui.Label("", word_wrap=True, height=0)
        self.refresh()

    def _row(self, label: str):
        row = ui.HStack(height=22, spacing=4)
        with row:
            ui.Label(label, width=_LABEL_W)
        return row

    def _build_scene(self) -> None:
        m = self.model
        with ui.CollapsableFrame("Scene", height=0):
            with ui.VStack(spacing=4, height=0):
                with self._row("Task"):
                    self._task = ui.ComboBox(max(0, m.task_names.index(m.settings.task)), *m.task_names)
                    self._task.model.add_item_changed_fn(
                        lambda model, item: m.set_task(m.task_names[model.get_item_value_model().as_int]))
                with self._row("Robots (1-8192)"):
                    self._num_envs = ui.IntField()
                    self._num_envs.model.set_value(m.num_envs)
                    self._num_envs.model.add_end_edit_fn(lambda model: m.set_num_envs(model.as_int))
                with self._row("Rendering"):
                    names = m.render_mode_names
                    from dofbot_rl.panel.render import RENDER_MODES

                    self._render = ui.ComboBox(names.index(m.settings.render_mode), *[RENDER_MODES[n].label for n in names])
                    self._render.model.add_item_changed_fn(
                        lambda model, item: m.set_render_mode(names[model.get_item_value_model().as_int]))
                self.buttons["load"] = ui.Button("Load", height=26, clicked_fn=lambda: m.press("load"))

    def _build_run(self) -> None:
        m = self.model
        with ui.CollapsableFrame("Train / Test", height=0):
            with ui.VStack(spacing=4, height=0):
                with self._row("Epochs (0: default)"):
                    self._epochs = ui.IntField()
                    self._epochs.model.set_value(m.settings.max_iterations)
                    self._epochs.model.add_end_edit_fn(lambda model: m.set_max_iterations(model.as_int))
                with ui.HStack(height=26, spacing=4):
                    for name in ("train", "resume", "test", "stop"):
                        self.buttons[name] = ui.Button(name.title(), clicked_fn=lambda n=name: m.press(n))

    def _build_checkpoints(self) -> None:
        m = self.model
        with ui.CollapsableFrame("Checkpoint", height=0):
            with ui.VStack(spacing=4, height=0):
                self._checkpoint_frame = ui.Frame(height=22)
                self._checkpoint_frame.set_build_fn(self._build_checkpoint_list)
                with ui.HStack(height=22, spacing=4):
                    ui.Button("Refresh", clicked_fn=m.refresh_checkpoints)
                    ui.Button("Browse...", clicked_fn=self._browse)
                self._checkpoint_message = ui.Label("", word_wrap=True, height=0)

    def _build_checkpoint_list(self) -> None:
        m = self.model
        labels = ["(none)"] + m.catalogue.labels()
        self._checkpoints = ui.ComboBox(m.catalogue.selected_index + 1, *labels)
        self._checkpoints.model.add_item_changed_fn(
            lambda model, item: m.select_checkpoint(model.get_item_value_model().as_int - 1))
        self._shown_labels = labels

    def _build_progress(self) -> None:
        with ui.CollapsableFrame("Progress", height=0):
            with ui.VStack(spacing=2, height=0):
                self._progress = ui.ProgressBar(height=18)
                self._figures = ui.Label("", height=0)
                self._plot = ui.Plot(ui.Type.LINE, 0.0, 1.0, 0.0, height=70)

    def _build_teleop(self) -> None:
        m = self.model
        with ui.CollapsableFrame("Teleop / Sim2Real", height=0, collapsed=True):
            with ui.VStack(spacing=4, height=0):
                self._teleop = ui.Label("", word_wrap=True, height=0)
                with self._row("Dofbot host / port"):
                    self._host = ui.StringField()
                    self._host.model.set_value(m.settings.sim2real_host)
                    self._port = ui.IntField(width=70)
                    self._port.model.set_value(m.settings.sim2real_port)
                with self._row("Token file"):
                    self._token = ui.StringField()
                    self._token.model.set_value(m.settings.sim2real_token_file)
                with self._row("Mode"):
                    self._link_mode = ui.ComboBox(SIM2REAL_MODES.index(m.settings.sim2real_mode), *SIM2REAL_MODES)
                with ui.HStack(height=22, spacing=4):
                    self._sim2real = ui.CheckBox(width=20)
                    self._sim2real.model.add_value_changed_fn(
                        lambda model: m.set_sim2real(
                            model.as_bool, self._host.model.as_string, self._port.model.as_int,
                            self._token.model.as_string,
                            SIM2REAL_MODES[self._link_mode.model.get_item_value_model().as_int]))
                    ui.Label("Link the selected robot to the real Dofbot (status light below)")
                self._sim2real_status = ui.Label("", height=0)

    def _browse(self) -> None:
        try:
            from omni.kit.window.filepicker import FilePickerDialog
        except ImportError:
            self.model._info("The file picker (omni.kit.window.filepicker) is not in this app: type the path in a script")
            return

        def apply(filename: str, dirname: str) -> None:
            import os

            self._picker.hide()
            self.model.pick_checkpoint_file(os.path.join(dirname, filename) if dirname else filename)

        if self._picker is None:
            self._picker = FilePickerDialog("Choose a checkpoint", apply_button_label="Choose", click_apply_handler=apply,
                                            file_extension_options=[("*.pth", "rl_games checkpoints")])
        self._picker.show(str(self.model.train_dir))

    # -- refreshing ----------------------------------------------------------------------
    def build_browser_ui(self) -> None:
        """The examples browser's detail pane: what the panel does and a button to open it."""
        with ui.VStack(spacing=4, height=0):
            ui.Label("Train, stop and test a PPO reacher for the Yahboom Dofbot inside Isaac Sim; "
                     "click a robot to drive it from the keyboard.", word_wrap=True)
            ui.Button("Open the RL Examples panel", height=26, clicked_fn=lambda: setattr(self, "visible", True))

    def refresh(self) -> None:
        """Copy the model's state into the widgets."""
        m = self.model
        if m is None or self._window is None or not self.buttons or not hasattr(self, "_status"):
            return
        for name, widget in self.buttons.items():
            state = m.button(name)
            widget.enabled, widget.text, widget.tooltip = state.enabled, state.label, state.tooltip
        for widget in (self._task, self._num_envs, self._epochs):
            widget.enabled = m.inputs_enabled
        if ["(none)"] + m.catalogue.labels() != self._shown_labels:
            self._checkpoint_frame.rebuild()
        self._checkpoint_message.text = m.catalogue.message
        self._progress.model.set_value(m.figures.progress_fraction)
        self._figures.text = "\n".join(f"{label}: {value}" for label, value in m.figures.lines())
        values = m.curve.values or [0.0]
        lo, hi = m.curve.value_range
        self._plot.set_data(*values)
        self._plot.scale_min, self._plot.scale_max = lo, hi
        self._teleop.text = m.teleop_line()
        self._sim2real_status.text = "Link: " + m.sim2real.status()
        if self._sim2real.model.as_bool != m.sim2real.enabled:  # unticks when the link failed or dropped
            self._sim2real.model.set_value(m.sim2real.enabled)
        errors = "; ".join(m.input_errors.values())
        self._status.text = m.status.text + (f"\n{errors}" if errors else "")
        self._status.set_style({"color": _STATUS_COLOURS.get(m.status.level, _STATUS_COLOURS["info"])})

