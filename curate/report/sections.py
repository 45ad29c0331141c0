"""The report's own sections, in page order; the stages' and policies' sections (curate/presentation.py) come
after `scores`."""
SECTIONS = ("summary", "accounting", "scores", "galleries", "timing", "config")
