"""Analysis of results: tables, plots and diagnostics."""
