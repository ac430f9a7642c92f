"""ptuning_core.engine: see README Layout."""
