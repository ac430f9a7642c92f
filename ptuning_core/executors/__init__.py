"""ptuning_core.executors: see README Layout."""
