"""One module per command group of the `botwatch` command line."""
