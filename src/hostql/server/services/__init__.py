"""Business logic shared by the REST API, the osquery API and the CLI."""
