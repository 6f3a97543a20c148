"""Plain result and progress records shared by the core, the CLI and the GUI."""
from __future__ import annotations

from dataclasses import asdict, dataclass

TEXT_TO_IMAGE = "text->image"
IMAGE_TO_TEXT = "image->text"
IMAGE_TO_IMAGE = "image->image"
DIRECTIONS = (TEXT_TO_IMAGE, IMAGE_TO_TEXT, IMAGE_TO_IMAGE)
LIBRARY = "library"  # not a search: the photos of the collection, by date taken (``Collection.library()``)
PIXELS_QUERY = "<image>"  # the query of a search by a photo given as pixels (no file to name)
MAX_TOP = 100_000  # the most results one search returns
EXIF, FILE_TIME = "exif", "file"  # where a photo's ``date_taken`` comes from


@dataclass
class Result:
    """One hit, ranked from 1. ``score`` is the final (Step-2 when re-ranked) score, ``step1`` the
    Step-1 score (for similar photos: the model's cosine of the two photos, how alike they are, by which they are
    ranked). Image hits have ``path`` (absolute), caption hits have ``caption``. ``confidence`` is the
    calibrated probability that the hit is a true match (None when the checkpoint has no calibration).
    ``date_taken`` (ISO 8601, local time) comes from ``date_source``: the photo's EXIF (:data:`EXIF`) or, without
    one, its file's modification time (:data:`FILE_TIME`)."""

    rank: int
    score: float
    step1: float
    direction: str
    query: str
    path: str | None = None
    caption: str | None = None
    width: int | None = None
    height: int | None = None
    date_taken: str | None = None
    confidence: float | None = None
    date_source: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class IndexProgress:
    """Progress of an index run: ``done`` of ``total`` files to encode, images/s, current file."""

    done: int
    total: int
    rate: float
    current: str
    skipped: int


@dataclass
class IndexSummary:
    """Outcome of an index run. ``skipped`` counts every file of the collection that cannot be
    indexed (see ``Collection.skipped()``); ``total`` every image file found; ``compacted`` the vector rows
    of changed or deleted photos dropped from the row files."""

    indexed: int
    reused: int
    removed: int
    skipped: int
    total: int
    cancelled: bool
    seconds: float
    compacted: int = 0  # unused vector rows dropped from the row files at the end of the run
    searchable: int = 0  # photos of the collection that searches can return after the run (this run's and earlier)
    unchanged: int = 0  # indexed photos found as they were (same size and time): nothing to do
