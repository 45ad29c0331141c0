"""Web-text quality rules: the `words` tokens, the `gopher_quality`, `gopher_repetition`, `c4` and `fineweb`
statistics (one score column each) and their policies (the published thresholds)."""
from curate.methods.webtext.c4 import C4
from curate.methods.webtext.fineweb import FineWeb
from curate.methods.webtext.gopher import GopherQuality, GopherRepetition
from curate.methods.webtext.policy import C4Policy, FineWebPolicy, GopherQualityPolicy, GopherRepetitionPolicy
from curate.methods.webtext.words import Words

__all__ = ["C4", "C4Policy", "FineWeb", "FineWebPolicy", "GopherQuality", "GopherQualityPolicy", "GopherRepetition",
           "GopherRepetitionPolicy", "Words"]
