"""ptuning_core.store.runs: see README Layout."""
