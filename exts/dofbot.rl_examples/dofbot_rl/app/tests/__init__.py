"""Kit tests of the extension (``omni.kit.test`` discovers ``dofbot_rl.app.tests``).

They need a running Isaac Sim; pytest never collects them (see ``conftest.py`` here).
Run (from the repository root)::

    isaac-sim.sh --ext-folder exts --enable dofbot.rl_examples --enable omni.kit.test \\
        --/exts/omni.kit.test/testExts/0=dofbot.rl_examples --no-window --/app/fastShutdown=1

or with Kit's test runner: ``omni.kit.test`` via ``--enable omni.kit.test
--/exts/omni.kit.test/runTestsAndQuit=true`` (see docs/extension.md).
"""

from dofbot_rl.app.tests.test_panel_kit import *  # noqa: F401,F403
from dofbot_rl.app.tests.test_scene_kit import *  # noqa: F401,F403
