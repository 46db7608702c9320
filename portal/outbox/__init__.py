"""Transactional outbox: messages are written with the change that caused them and sent later, once."""
