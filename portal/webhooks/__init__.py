"""Inbound webhooks from the shop's systems (signed with portal.outbox.signing; CSRF-exempt under /webhooks/)."""
