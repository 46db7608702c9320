"""JSON API (/api/v1) with API keys: keys.py (service), guard.py, v1.py (routes), views_admin.py (back-office)."""
