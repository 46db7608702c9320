"""The back-office: staff accounts and roles, receiving, inspection, refunds, support."""
