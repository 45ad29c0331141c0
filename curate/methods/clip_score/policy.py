"""The `clip_score` policy: LAION's rule, keep the pairs whose image-caption cosine is at least `min_score`.

0.28 is LAION-400M's cut for OpenAI's ViT-B/32 (Schuhmann et al. 2021); LAION-5B used 0.28 for English and
0.26 for other languages with ViT-B/32 too. A cosine scale is the model's own: another model needs its own
cut (compare the report's histogram), or use DataComp's rule instead, `keep_fraction` on `clip_score.score`
(the top 30% in DataComp's best CLIP-score baseline, with ViT-L/14).
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from curate.methods.hints import PolicyName
from curate.policy import Threshold


class ClipScorePolicy(Threshold):
    """Keep rows whose CLIP score is >= `min_score` (LAION: 0.28 for ViT-B/32)."""

    type = "clip_score"

    def __init__(self,
                 min_score: Annotated[float, Field(ge=-1, le=1, description="the lowest cosine kept (0.28: LAION's "
                                                                            "cut for ViT-B/32)")] = 0.28,
                 column: Annotated[str, Field(description="the clip_score stage's score column")]
                 = "clip_score.score",
                 name: PolicyName = None):
        super().__init__(column, min=min_score, name=name)
        self.min_score = float(min_score)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "min": self.min_score}  # `min`: where the report draws the cut
