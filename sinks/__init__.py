"""OpenSearch: bulk writer, index templates, retention and dashboards objects."""
