"""tools/offline_bundle.py: the pinned closure it downloads, with what the target already holds left out."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("offline_bundle", Path(__file__).parents[1] / "tools" / "offline_bundle.py")
offline_bundle = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(offline_bundle)


def test_closure_pins_what_runs_here_and_leaves_out_what_the_target_has():
    from importlib import metadata

    full = offline_bundle.closure(["rl-games"])
    names = {pin.split("==")[0] for pin in full}
    assert "torch" not in names and "rl-games" in names and "tensorboard" in names
    assert f"rl-games=={metadata.version('rl-games')}" in full  # the version tested here
    only_tensorboard_needs = "tensorboard-data-server"
    assert only_tensorboard_needs in names
    skipped = {pin.split("==")[0] for pin in offline_bundle.closure(["rl-games"], skip=("torch", "tensorboard"))}
    assert "tensorboard" not in skipped and only_tensorboard_needs not in skipped and "rl-games" in skipped
