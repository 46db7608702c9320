"""The merchant's brand: name, colour, logo and support contact on pages, e-mails and labels.

cache.py reads it (cheaply, shared by every request), rules.py checks what an admin types,
service.py saves it with an audit entry, views.py has the settings page and the public assets.
"""
