"""Image-quality metrics; each registered in ``bench.plugins``."""
