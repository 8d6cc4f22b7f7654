"""Dead letters after the fact: inspect, export/import and replay (``botwatch dlq``).

Pure parts: ``records`` (a dead letter read back, typed), ``select`` (filters and the summary
histogram), ``plan`` (replay decisions, headers, checkpoint, rate limit), ``jsonl`` (the
export format). Kafka I/O: ``kafka``.
"""
