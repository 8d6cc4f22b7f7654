"""The event contract: models, validation, JSON Schema and index mappings.

Imports no other botwatch package; all of them import it.
"""
