"""Token counts: the `tokens` stage."""
from curate.methods.tokens.stage import Tokens

__all__ = ["Tokens"]
