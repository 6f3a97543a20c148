"""Training, loss, retrieval metrics and evaluation."""
