"""Defended (and baseline) models, one file each; registered in ``bench.plugins``."""
