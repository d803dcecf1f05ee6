"""The privacy-utility benchmark (DTP, PL, RR, SE) of LifeVeil against baselines.

Layout: ``methods`` map images to what leaves the device; ``tasks`` measure utility on those
features and ``attacks`` privacy leakage and reconstruction, both through the typed contracts
of ``contracts`` (``EvalInputs -> Result``, metric names in ``schema``); ``evaluate`` runs every
registered task and attack on one method; ``se`` measures system efficiency; ``jobs``,
``planning`` and ``runner`` run the sweep of jobs; ``report`` writes results.json, summary.md,
report.html and the figures; ``traffic`` is the traffic-analysis check.
"""
