"""The privacy-utility benchmark (DTP, PL, RR, SE) of LifeVeil against baselines.

Layout: ``methods`` map images to what leaves the device; ``tasks`` measure utility on those
features; ``attacks`` measure privacy leakage and reconstruction; ``se`` measures system
efficiency; ``runner`` runs the sweep of jobs and ``report`` writes results and plots.
"""
