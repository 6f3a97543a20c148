"""Datasets, image loading and the on-disk feature cache."""
