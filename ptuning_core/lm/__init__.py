"""ptuning_core.lm: see README Layout."""
