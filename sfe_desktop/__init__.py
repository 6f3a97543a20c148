"""SFE Explorer: search a photo collection by meaning with a Step-wise Feature Enhancement network."""

__version__ = "0.1.0"
