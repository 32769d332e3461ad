"""One module per ``meta-tutor`` subcommand (see ``meta_rl.cli``)."""
