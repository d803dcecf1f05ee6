"""LifeVeil: on-device privatization of always-on camera streams.

Pipeline (one subpackage each): ``ingest`` (decode media) -> ``vault`` (encrypted raw
storage on the device) -> ``privatizer`` (the model M producing the Minimal Sufficient
Representation z) -> ``transport`` (constant-rate uplink) -> ``server`` (stores z, answers
queries). ``teachers`` are the frozen semantic encoders, ``data`` the dataset loaders and
``bench`` the privacy-utility benchmark.
"""

__version__ = "0.1.0"
