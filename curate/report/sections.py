"""The report's sections, in page order."""
SECTIONS = ("summary", "accounting", "scores", "galleries", "timing", "config")
