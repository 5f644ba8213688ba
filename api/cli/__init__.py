"""The `channelboard` command line: the root command in ``main``, one module per group of
sub-commands, and what they share (``settings``, ``wiring``, ``redis_loss``) below them."""
