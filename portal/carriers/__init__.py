"""Carrier tracking: adapters (event code -> return state), service (apply one scan), webhook (inbound), polling (outbound)."""
