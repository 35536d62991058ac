"""nnU-Net v2 itself: its environment (folders, trainer lookup, worker counts), its stock
commands called in-process (plan, train, predict a dataset) and the patient-grouped splits.

Every part of this package that needs nnU-Net's folders or commands goes through here.
"""
