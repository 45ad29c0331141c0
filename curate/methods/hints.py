"""Parameter declarations several methods share (`curate.params`: the hint is the check, the Field its doc)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

StageName = Annotated[str | None, Field(description="the stage's name, the prefix of its columns (default: its type)")]
PolicyName = Annotated[str | None, Field(description="the policy's name (default: the stage it reads)")]
Device = Annotated[Literal["auto", "cpu", "cuda"],
                   Field(description="where the model runs: `auto` takes a GPU when the worker sees one")]
Cpus = Annotated[float, Field(ge=0, description="CPUs per worker")]
Gpus = Annotated[float | None, Field(ge=0, description="GPUs per worker (default: 1 for a GPU model, unless device is cpu)")]
BatchSize = Annotated[int | None, Field(ge=1, description="rows per model call (default: 256 on GPU, 32 on CPU)")]
