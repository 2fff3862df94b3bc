"""rl_games glue: vec-env adapter, Trainer, play, checkpoints, export, the standalone policy, several-process training."""
