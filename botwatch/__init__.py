"""botwatch: the command line and settings that wire producers, streams and sinks together."""
