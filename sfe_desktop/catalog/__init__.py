"""SQLite catalog of a photo collection and the folder scanner that feeds it."""
from .db import SCHEMA_VERSION, Catalog, FileRow
from .scanner import ScanEntry, content_hash, scan

__all__ = ["SCHEMA_VERSION", "Catalog", "FileRow", "ScanEntry", "content_hash", "scan"]
