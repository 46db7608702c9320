"""Shared web plumbing: templates, sessions, CSRF, errors, rate limits."""
