"""The `languages` policy: keep the rows identified as one of the listed languages, above a confidence."""
from __future__ import annotations

from typing import Annotated

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.errors import ConfigError
from curate.methods.hints import PolicyName
from curate.methods.langid.codes import normalise
from curate.methods.langid.presentation import LanguagesPresenter
from curate.policy import Policy, Rows, scatter


class Languages(Policy):
    """Keep rows identified as a listed language with at least `min_confidence`; reasons name both."""

    type = "languages"
    presenter = LanguagesPresenter()

    def __init__(self,
                 languages: Annotated[list[str], Field(min_length=1, description="languages kept (ISO 639-1 codes "
                                                                                "where they exist, e.g. [en, de])")],
                 min_confidence: Annotated[float, Field(ge=0, le=1, description="rows identified with a lower "
                                                                                "confidence are dropped")] = 0.65,
                 column: Annotated[str, Field(description="the langid stage's `confidence` column (its `language` "
                                                          "column is read beside it)")] = "langid.confidence",
                 name: PolicyName = None):
        super().__init__(column, name)
        if not column.endswith(".confidence"):
            raise ConfigError(f"policy languages: column {column!r} must be a langid stage's confidence column, "
                              "like 'langid.confidence'")
        # Codes given in another spelling (deu, pt_BR, iw) are read in the stage's convention.
        self.languages, self.min_confidence = languages, float(min_confidence)
        self._wanted = sorted({normalise(code) for code in languages})

    @property
    def columns(self) -> list[str]:
        return [self.column, f"{self.stage}.language"]

    def wanted(self) -> list[str]:
        """The listed languages in the stage's code convention."""
        return list(self._wanted)

    def decide_rows(self, rows: Rows) -> tuple[np.ndarray, pa.Array, dict[str, np.ndarray]]:
        confidence = np.asarray(rows.values, dtype=np.float64)
        language = np.asarray(rows.cols[self.columns[1]], dtype=object)
        listed = np.isin(language.astype(str), self._wanted)
        sure = confidence >= self.min_confidence
        keep = listed & sure
        gone = np.flatnonzero(~keep)
        if not len(gone):
            return keep, pa.nulls(len(keep), pa.string()), {}
        wanted = ", ".join(self._wanted)
        text = [f"language {language[i]} ({confidence[i]:.2f}) not in [{wanted}]" if not listed[i] else
                f"language {language[i]} confidence {confidence[i]:.2f} < {self.min_confidence:g}" for i in gone]
        return keep, scatter(pa.array(text, pa.string()), gone, len(keep)), {}
