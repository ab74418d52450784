"""The agent: flags, config, scheduler, differ, loggers, remote client."""
