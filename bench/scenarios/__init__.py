"""Evaluation scenarios, one file each; registered in ``bench.plugins``."""
