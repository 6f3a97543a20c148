"""The SFE network: backbones, Step-1 cues, Step-2 re-ranker, checkpoints and the runtime API."""
