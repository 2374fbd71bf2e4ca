"""Attacks, one file each; registered in ``bench.plugins``."""
