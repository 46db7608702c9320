"""The merchant dashboard: return rates, reasons, refunds and Norway storage, as pages, SVG charts and CSV.

filters.py parses the GET filter, metrics.py aggregates in SQL and returns plain data,
charts.py lays out the SVG charts (templates/staff/charts/ draws them), csv_export.py writes
the downloads and views.py is the thin controller.
"""
