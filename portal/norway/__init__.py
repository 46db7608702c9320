"""Norway: adapters from the portal's tables to the pure `customs` library."""
