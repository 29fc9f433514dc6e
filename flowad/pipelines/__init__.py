"""End-to-end pipelines from raw files to per-file anomaly scores.

Submodules are imported explicitly (``from flowad.pipelines.sound import SoundDetector``) so
that importing :mod:`flowad` does not pull in the audio libraries.
"""
