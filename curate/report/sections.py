"""The report's sections, in page order."""
SECTIONS = ("summary", "accounting", "scores", "join", "dedup", "galleries", "timing", "config")
