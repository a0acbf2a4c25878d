"""Parsed job specs, reused while their stored text is unchanged.

The runtime reads the specs of the jobs it fires, claims and checks thousands of times a
second; decoding the JSON and rebuilding a `JobSpec` was a tenth of the scheduler's CPU.
Queries select the spec as text (`SPEC_TEXT`) and `spec_of` parses it only when the text
differs from the one seen last for that job, so an edit (by any process) is always seen.
The cache is bounded (least recently used), so 100,000 jobs do not all stay in memory.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict

from sqlalchemy import Text, cast

from cronkeeper.domain.jobs import JobSpec
from cronkeeper.store.tables import jobs

#: `jobs.spec` as its stored JSON text, labelled `spec_text`.
SPEC_TEXT = cast(jobs.c.spec, Text).label("spec_text")
#: Parsed specs kept (a spec is about 2 KB parsed).
CACHE_SIZE = 20_000

_cache: OrderedDict[uuid.UUID, tuple[str, JobSpec]] = OrderedDict()


def spec_of(job_id: uuid.UUID, text: str | dict[str, object]) -> JobSpec:
    """The parsed spec of `job_id` whose stored text is `text`."""
    if isinstance(text, dict):  # a driver that already decoded it
        return JobSpec.from_body(text)
    cached = _cache.get(job_id)
    if cached is not None and cached[0] == text:
        _cache.move_to_end(job_id)
        return cached[1]
    spec = JobSpec.from_body(json.loads(text))
    _cache[job_id] = (text, spec)
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return spec
