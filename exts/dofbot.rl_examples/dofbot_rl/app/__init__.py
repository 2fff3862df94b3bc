"""Kit layer of dofbot-rl: the ``dofbot.rl_examples`` extension (imported only inside Kit).

Kit imports this module (``[[python.module]] name = "dofbot_rl.app"`` in
``config/extension.toml``) and starts the :class:`omni.ext.IExt` it finds here. Every
module of this package may import ``omni``, ``carb``, ``pxr`` and ``isaacsim``; nothing
outside it does. Import errors are not caught: Kit logs them and shows the extension as
failed.
"""

from dofbot_rl.app.extension import DofbotRlExtension, get_instance

__all__ = ["DofbotRlExtension", "get_instance"]
