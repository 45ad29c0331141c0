"""Language identification: the `langid` stage and the `languages` policy."""
from curate.methods.langid.policy import Languages
from curate.methods.langid.stage import LangID

__all__ = ["LangID", "Languages"]
