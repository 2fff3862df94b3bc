"""These are Kit tests (omni.kit.test); they import omni and run only inside Isaac Sim."""

collect_ignore_glob = ["*"]
