"""Background jobs (APScheduler 3): the outbox dispatcher, run by `portal worker`."""
