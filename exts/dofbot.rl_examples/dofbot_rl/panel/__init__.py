"""The RL Examples panel without Kit: its model, runtime session and the pieces they use.

* :mod:`~dofbot_rl.panel.model` - :class:`PanelModel`: states, buttons, validation, status;
* :mod:`~dofbot_rl.panel.session` - :class:`Session`: the loaded task and the run on it;
* :mod:`~dofbot_rl.panel.catalogue` - the checkpoint list and its validation;
* :mod:`~dofbot_rl.panel.figures` - live figures, the learning curve, test statistics;
* :mod:`~dofbot_rl.panel.render` - the render modes;
* :mod:`~dofbot_rl.panel.settings` - persistence through a key-value store;

``dofbot_rl.app.window`` binds omni.ui widgets to :class:`PanelModel`; nothing here imports Kit.
"""

from dofbot_rl.panel.model import BUTTONS, ButtonState, PanelModel, PanelState, StatusLine, parse_num_envs
from dofbot_rl.panel.render import RENDER_MODES, RenderMode
from dofbot_rl.panel.session import Session, SessionError
from dofbot_rl.panel.settings import MAX_UI_NUM_ENVS, SETTINGS_ROOT, DictStore, PanelSettings

__all__ = [
    "BUTTONS",
    "ButtonState",
    "DictStore",
    "MAX_UI_NUM_ENVS",
    "PanelModel",
    "PanelSettings",
    "PanelState",
    "RENDER_MODES",
    "RenderMode",
    "SETTINGS_ROOT",
    "Session",
    "SessionError",
    "StatusLine",
    "parse_num_envs",
]
