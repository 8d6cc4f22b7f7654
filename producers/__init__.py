"""What bots import: the event producer SDK, the logging handler and the load generator."""
