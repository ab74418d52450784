"""The management server: Fleet-compatible osquery API and REST API."""
