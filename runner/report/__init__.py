"""Reports from a results store: tables, plots, a self-contained HTML page."""
