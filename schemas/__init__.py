"""The event contract: models, validation, JSON Schema and index mappings. Imports no other botwatch package."""
