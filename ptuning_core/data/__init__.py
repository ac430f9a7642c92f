"""ptuning_core.data.bundled: see README Layout."""
