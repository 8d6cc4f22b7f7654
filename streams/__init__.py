"""The Faust app: topics, agents, windowed tables, alert rules and dead-letter routing."""
