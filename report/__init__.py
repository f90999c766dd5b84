"""schedule-bench report: run records in; statistics, tables, figures, HTML and PDF out."""
