"""Everyday words that name a whole family of ImageNet classes ("dog": its 118 breeds).

A word is matched to ImageNet classes through MiniLM: its cosine to each class's prompt "a photo of a {class}". For a
family name that finds the wrong things: MiniLM puts "dog" next to "dogsled" and "hotdog" before any breed, "bird"
next to "birdhouse", "ball" next to "ballplayer", "car" next to "passenger car" (a railway carriage). On 60
Flickr8k val captions the word "dog" named "dogsled" in 32 of 47 photos. For the words below the classes a word can
name are its family's members instead, and the photo's own class probabilities pick among them (``explain``).

Families are written as class names (and first-last name ranges of ImageNet's contiguous blocks), resolved against
the model's class list; a name the list lacks is left out, so a model with another classifier loses only those.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

# first and last class of contiguous blocks of ImageNet's class list
RANGES: dict[str, list[tuple[str, str]]] = {
    "dog": [("Chihuahua", "Mexican hairless")],
    "wolf": [("timber wolf", "red wolf")],
    "fox": [("red fox", "grey fox")],
    "cat": [("tabby", "Egyptian cat")],
    "bear": [("brown bear", "sloth bear")],
    "bird": [("cock", "great grey owl"), ("black grouse", "black swan"), ("white stork", "albatross")],
    "fish": [("tench", "stingray"), ("barracouta", "puffer")],
    "snake": [("thunder snake", "sidewinder")],
    "lizard": [("banded gecko", "Komodo dragon")],
    "turtle": [("loggerhead", "box turtle")],
    "frog": [("bullfrog", "tailed frog")],
    "spider": [("black and gold garden spider", "wolf spider")],
    "butterfly": [("admiral", "lycaenid")],
    "rabbit": [("wood rabbit", "Angora")],
    "monkey": [("guenon", "squirrel monkey")],
    "ape": [("orangutan", "siamang")],
}

NAMES: dict[str, list[str]] = {
    "car": ["beach wagon", "cab", "convertible", "jeep", "limousine", "minivan", "Model T", "racer", "sports car",
            "police van", "ambulance"],
    "truck": ["fire engine", "garbage truck", "pickup", "tow truck", "trailer truck", "moving van"],
    "bus": ["school bus", "trolleybus", "minibus"],
    "bicycle": ["mountain bike", "bicycle-built-for-two", "tricycle", "unicycle"],
    "motorcycle": ["moped", "motor scooter"],
    "boat": ["canoe", "speedboat", "lifeboat", "fireboat", "gondola", "yawl", "catamaran", "trimaran", "schooner",
             "paddlewheel"],
    "ship": ["container ship", "liner", "pirate", "schooner", "fireboat"],
    "train": ["passenger car", "electric locomotive", "steam locomotive", "freight car", "bullet train", "streetcar"],
    "plane": ["airliner", "warplane"],
    "ball": ["soccer ball", "tennis ball", "golf ball", "basketball", "volleyball", "rugby ball", "croquet ball",
             "ping-pong ball", "baseball"],
    "guitar": ["acoustic guitar", "electric guitar"],
    "horse": ["sorrel"],
    "cow": ["ox"],
    "sheep": ["ram"],
    "pig": ["hog"],
    "elephant": ["tusker", "Indian elephant", "African elephant"],
    "chair": ["folding chair", "rocking chair", "barber chair", "throne"],
    "sofa": ["studio couch"],
    "bed": ["four-poster"],
    "table": ["dining table"],
    "hat": ["cowboy hat", "sombrero"],
    "phone": ["cellular telephone"],
    "computer": ["desktop computer", "laptop", "notebook"],
    "tent": ["mountain tent"],
}

SYNONYMS = {"puppy": "dog", "puppies": "dog", "doggy": "dog", "kitten": "cat", "kitty": "cat", "bike": "bicycle",
            "bikes": "bicycle", "cycle": "bicycle", "motorbike": "motorcycle", "airplane": "plane",
            "aeroplane": "plane", "aircraft": "plane", "couch": "sofa", "bunny": "rabbit", "cattle": "cow",
            "cows": "cow", "pony": "horse", "lamb": "sheep", "lambs": "sheep", "cellphone": "phone",
            "ships": "ship", "buses": "bus", "taxi": "car", "automobile": "car", "fishes": "fish"}


def family(word: str) -> str | None:
    """The family a word names ("dogs" -> "dog", "puppy" -> "dog"), or None."""
    w = word.lower().strip()
    for form in (w, w[:-1] if w.endswith("s") else None, w[:-3] + "y" if w.endswith("ies") else None):
        if form in RANGES or form in NAMES:
            return form
    return SYNONYMS.get(w)


@lru_cache(maxsize=8)
def _resolved(class_names: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    index = {name: i for i, name in enumerate(class_names)}
    out = {}
    for name, spans in RANGES.items():
        members = [i for a, b in spans if a in index and b in index for i in range(index[a], index[b] + 1)]
        if members:
            out[name] = tuple(members)
    for name, names in NAMES.items():
        members = sorted({index[n] for n in names if n in index})
        if members:
            out[name] = tuple(members)
    return out


def members(word: str, class_names: Sequence[str]) -> tuple[int, ...]:
    """Indices (into ``class_names``) of the classes ``word`` names as a family; empty for any other word."""
    name = family(word)
    return () if name is None else _resolved(tuple(class_names)).get(name, ())
