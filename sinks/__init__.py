"""Where records leave the pipeline: OpenSearch (bulk writer, index templates, retention) and
the alert receivers (Alertmanager, webhook, Slack)."""
