"""What every Kit test of the extension shares: waiting across app updates."""

import omni.kit.app
import omni.kit.test

from dofbot_rl.app.extension import get_instance


class KitTestCase(omni.kit.test.AsyncTestCase):
    """An ``omni.kit.test`` case that steps Kit's app updates while the panel works."""

    async def _updates(self, n):
        for _ in range(n):
            await omni.kit.app.get_app().next_update_async()

    async def _until(self, predicate, max_updates):
        """App updates until ``predicate()`` holds; fails after ``max_updates`` with the panel's state."""
        for _ in range(max_updates):
            if predicate():
                return
            await omni.kit.app.get_app().next_update_async()
        model = get_instance().model
        self.fail(f"timed out; panel state {model.state}, status {model.status.text}")
