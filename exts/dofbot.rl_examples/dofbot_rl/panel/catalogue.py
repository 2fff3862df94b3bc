"""The panel's checkpoint list: ``<train_dir>/*/nn/*.pth`` plus files the user picked.

Entries come from :func:`dofbot_rl.rl.checkpoints.list_checkpoints` (parsed into
run / epoch / reward; grouped by run, the newest run and within it the newest file first,
each label starting with the run's name, ``DofbotReacher_20261130-170800  ep 30  rew 12.34``);
a chosen entry is validated with
:func:`~dofbot_rl.rl.checkpoints.validate_for_task` against the task's sizes before
**Test** or **Resume** may use it.
"""

from pathlib import Path
from typing import List, Optional

from dofbot_rl.rl.checkpoints import CheckpointEntry, CheckpointError, list_checkpoints, parse_checkpoint_name, validate_for_task


class CheckpointCatalogue:
    """Checkpoint entries, the selection, and whether the selection fits the task.

    Args:
        train_dir: folder holding ``<experiment>/nn/*.pth``.
        num_observations, num_actions: the task's sizes, for validation.
    """

    def __init__(self, train_dir, num_observations: int, num_actions: int):
        self.train_dir = Path(train_dir)
        self.num_observations = int(num_observations)
        self.num_actions = int(num_actions)
        self.entries: List[CheckpointEntry] = []
        self._picked: List[CheckpointEntry] = []
        self.selected: Optional[CheckpointEntry] = None
        self.valid = False  #: the selection passed validation
        self.message = ""  #: validation result of the selection, one line

    def set_task_sizes(self, num_observations: int, num_actions: int) -> None:
        """Change the task the selection is validated against (and re-validate)."""
        self.num_observations, self.num_actions = int(num_observations), int(num_actions)
        self._validate()

    def refresh(self) -> List[CheckpointEntry]:
        """Re-read ``train_dir``; picked files stay first. Keeps the selection if it still exists."""
        listed = list_checkpoints(self.train_dir) if self.train_dir.is_dir() else []
        picked_paths = {e.path.resolve() for e in self._picked}
        self.entries = self._picked + [e for e in listed if e.path.resolve() not in picked_paths]
        if self.selected is not None and not self.selected.path.is_file():
            self.selected, self.valid, self.message = None, False, ""
        return self.entries

    def labels(self) -> List[str]:
        """One line per entry for the list widget (``label`` plus a marker for picked files)."""
        picked = {id(e) for e in self._picked}
        return [(e.label + "  (picked)") if id(e) in picked else e.label for e in self.entries]

    @property
    def selected_index(self) -> int:
        """Index of the selection in :attr:`entries`, or -1."""
        for i, entry in enumerate(self.entries):
            if self.selected is not None and entry.path == self.selected.path:
                return i
        return -1

    def select(self, index: int) -> bool:
        """Select ``entries[index]`` (-1 clears) and validate it; returns :attr:`valid`.

        Raises:
            IndexError: for an index out of range.
        """
        if index == -1:
            self.selected, self.valid, self.message = None, False, ""
            return False
        if not 0 <= index < len(self.entries):
            raise IndexError(f"checkpoint index {index} out of range 0..{len(self.entries) - 1}")
        self.selected = self.entries[index]
        return self._validate()

    def select_path(self, path) -> bool:
        """Select the file at ``path`` (from the file picker or the saved settings), adding it
        to the list when it is not there; returns :attr:`valid`."""
        path = Path(path).expanduser()
        for entry in self.entries:
            if entry.path.resolve() == path.resolve():
                self.selected = entry
                return self._validate()
        entry = parse_checkpoint_name(path)
        self._picked.insert(0, entry)
        self.entries.insert(0, entry)
        self.selected = entry
        return self._validate()

    def _validate(self) -> bool:
        if self.selected is None:
            self.valid, self.message = False, ""
            return False
        try:
            validate_for_task(self.selected.path, self.num_observations, self.num_actions)
        except CheckpointError as exc:
            self.valid, self.message = False, str(exc)
        else:
            self.valid, self.message = True, f"{self.selected.path.name}: fits the task"
        return self.valid
