"""Export of search results."""
from .csv_export import COLUMNS, safe_cell, write_csv

__all__ = ["COLUMNS", "safe_cell", "write_csv"]
