"""Kit tests of the extension (``omni.kit.test`` discovers ``dofbot_rl.app.tests``).

They need a running Isaac Sim; pytest never collects them (see ``conftest.py`` here).
Run (from the repository root)::

    isaac-sim.sh --ext-folder exts --enable dofbot.rl_examples --enable omni.kit.test \\
        --/exts/omni.kit.test/testExts/0=dofbot.rl_examples \\
        --/exts/omni.kit.test/runTestsAndQuit=true --no-window

(docs/extension.md). Runs go to temporary folders, never into the repository.
"""

from dofbot_rl.app.tests.test_kit_behaviour import *  # noqa: F401,F403
from dofbot_rl.app.tests.test_panel_kit import *  # noqa: F401,F403
from dofbot_rl.app.tests.test_scene_kit import *  # noqa: F401,F403
