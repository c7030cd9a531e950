"""What a batch run keeps and hands back: its settings, each job's record (kept in the run state), the outcome
of a phase; and the services' limits on a job. See ``genai_batch``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .base import ImageResult
from .cost import BATCH_PRICE_FACTOR

#: the Gemini API takes inline batch requests up to 20 MB in all; larger ones go as a file
INLINE_LIMIT_BYTES = 20_000_000
#: the Files API takes files up to 2 GB; a phase larger than this goes as several jobs
MAX_JOB_BYTES = 1_900_000_000
#: the Gemini API states no limit on a job's requests
MAX_JOB_REQUESTS = 10**9
#: Vertex AI's batch prediction limits ("Quotas and limits" of its batch inference guide): a Cloud Storage input
#: of at most 1 GB, and at most 200,000 requests in a job; under the first with room for the JSON around requests
VERTEX_MAX_JOB_BYTES = 950_000_000
VERTEX_MAX_JOB_REQUESTS = 200_000


@dataclass
class BatchSettings:
    bucket: str = ""  # BATCH_BUCKET: gs://bucket[/prefix], Vertex AI only
    inline_limit_bytes: int = INLINE_LIMIT_BYTES
    max_job_bytes: int = 0  # a job's most bytes of requests (0: the API's limit)
    max_job_requests: int = 0  # a job's most requests (0: the API's limit)
    poll_s: float = 30.0  # between two looks at the jobs
    cancel_remote: bool = True  # a user's cancel also cancels the jobs on Google's side
    online_concurrency: int = 4  # retry_online's parallel calls
    name_prefix: str = "isotiles"


@dataclass
class BatchJobRecord:
    """What the run state keeps of one job (``as_dict`` / ``from_dict``: plain JSON)."""

    name: str  # "batches/..." or "projects/.../batchPredictionJobs/..."
    api: str  # "gemini" | "vertex"
    model: str
    mode: str  # "inline" | "file" | "gcs"
    keys: list[str]  # the caller's keys, in the job's order
    display_name: str = ""
    input: str = ""  # the uploaded file ("files/...") or "gs://..." JSONL
    output: str = ""  # Vertex: the gs:// prefix the job writes under
    submitted: float = 0.0  # time.time() at creation

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BatchJobRecord:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class BatchOutcome:
    results: dict[str, ImageResult] = field(default_factory=dict)  # every key asked
    online: list[str] = field(default_factory=list)  # keys to ask again online (see retry_online)
    jobs: list[BatchJobRecord] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)  # job name -> its last state
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts and costs for the report: the batch price paid, and what the same answers cost online."""
        batch_cost = sum(r.cost_usd for r in self.results.values() if not r.cached)
        return {
            "requests": len(self.results),
            "jobs": [
                {"name": j.name, "mode": j.mode, "requests": len(j.keys), "state": self.states.get(j.name, "")}
                for j in self.jobs
            ],
            "from_cache": sum(1 for r in self.results.values() if r.cached),
            "answered": sum(1 for r in self.results.values() if r.ok and not r.cached),
            "failed": sum(1 for r in self.results.values() if not r.ok),
            "to_retry_online": len(self.online),
            "cost_usd": round(batch_cost, 6),
            "online_equivalent_usd": round(batch_cost / BATCH_PRICE_FACTOR, 6),
        }
