"""Rule-driven customer and staff notifications: variables, templates, rules, time-based sweep, starter rules."""
