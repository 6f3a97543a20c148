"""Sorting and filtering a result list (search/browse.py), against hand-made results."""
from __future__ import annotations

from sfe_desktop.search.browse import Arrangement, by_date, subfolders
from sfe_desktop.search.types import Result


def hit(rank, path, date=None):
    return Result(rank, 1.0 - rank / 10, 0.0, "text->image", "q", path=path, date_taken=date)


ROOT = "/photos"
HITS = [hit(1, "/photos/b.jpg", "2020-05-01T10:00:00"), hit(2, "/photos/trip/A.jpg", "2021-01-01T08:00:00"),
        hit(3, "/photos/trip/day2/c.jpg", "2021-01-02T09:00:00"), hit(4, "/photos/a.jpg", "2020-05-01T10:00:00"),
        hit(5, "/photos/tripod/d.jpg", None)]


def names(results):
    return [r.path.removeprefix("/photos/") for r in results]


def test_sorts():
    assert names(Arrangement().apply(HITS, ROOT)) == names(HITS)  # relevance: as ranked
    assert names(Arrangement(sort="newest").apply(HITS, ROOT)) == [
        "trip/day2/c.jpg", "trip/A.jpg", "a.jpg", "b.jpg", "tripod/d.jpg"]  # same date: by name; undated last
    assert names(Arrangement(sort="oldest").apply(HITS, ROOT)) == [
        "a.jpg", "b.jpg", "trip/A.jpg", "trip/day2/c.jpg", "tripod/d.jpg"]
    assert names(Arrangement(sort="name").apply(HITS, ROOT)) == [
        "a.jpg", "trip/A.jpg", "b.jpg", "trip/day2/c.jpg", "tripod/d.jpg"]  # case-insensitive; same name: by path
    assert by_date(HITS) == Arrangement(sort="newest").apply(HITS, ROOT)


def test_filters():
    assert subfolders(HITS, ROOT) == ["trip", "trip/day2", "tripod"]
    assert names(Arrangement(folder="trip").apply(HITS, ROOT)) == ["trip/A.jpg", "trip/day2/c.jpg"]  # not tripod
    assert names(Arrangement(folder="").apply(HITS, ROOT)) == ["b.jpg", "a.jpg"]  # directly in the folder
    assert names(Arrangement(date_from="2021-01-01").apply(HITS, ROOT)) == ["trip/A.jpg", "trip/day2/c.jpg"]
    assert names(Arrangement(date_to="2021-01-01").apply(HITS, ROOT)) == ["b.jpg", "trip/A.jpg", "a.jpg"]
    both = Arrangement(sort="name", folder="trip", date_from="2021-01-02", date_to="2021-01-02")
    assert names(both.apply(HITS, ROOT)) == ["trip/day2/c.jpg"] and both.filters()
    assert not Arrangement(sort="name").filters()


def test_strong_weak_and_nothing_matches():
    from dataclasses import replace

    from sfe_desktop.search.browse import STRONG, WEAK, nothing_matches, strength

    sure, unsure, unknown = (replace(HITS[0], confidence=0.9), replace(HITS[1], confidence=0.2), HITS[2])
    assert (strength(sure), strength(unsure), strength(unknown)) == (STRONG, WEAK, None)
    assert nothing_matches([unsure]) and not nothing_matches([sure, unsure])
    assert not nothing_matches([unknown, unsure]) and not nothing_matches([])
