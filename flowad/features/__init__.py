"""Feature extraction from raw signals (vibration snapshots, audio files) and machine-sound file-name parsers.

A low layer: it knows numpy, scipy and files, never detectors or benchmarks. Submodules are
imported explicitly (``from flowad.features.vibration import snapshot_features``), so that
importing :mod:`flowad` does not pull in the audio libraries.
"""
