"""Rendered documents (labels, manifests): rendered once, stored, served from the store."""
