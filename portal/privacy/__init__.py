"""Personal data: GDPR retention (anonymisation) and the customer data export for support."""
