"""Progress and results of `?async=true` uploads."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status

from gpu_app.deps import RuntimeDep, require_api_key
from gpu_app.schemas import INVALID, NOT_FOUND, UNAUTHORIZED, FileResult, JobOut

router = APIRouter(
    tags=["jobs"],
    dependencies=[Depends(require_api_key)],
    responses=UNAUTHORIZED | INVALID | NOT_FOUND,
)


@router.get("/jobs/{job_id}", response_model=JobOut, name="get_job")
async def get_job(job_id: str, runtime: RuntimeDep) -> JobOut:
    job = runtime.jobs.get(job_id) if runtime.jobs else None
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}")
    results = [FileResult.from_outcome(o) for o in list(job.results)]
    failed = sum(1 for r in results if r.status == "error")
    return JobOut(
        job_id=job.id,
        status=job.status,
        created_at=job.created_at,
        finished_at=job.finished_at,
        total=job.total,
        done=job.done,
        succeeded=len(results) - failed,
        failed=failed,
        pending=job.pending,
        retry_reason=job.retry_reason,
        next_attempt_at=job.next_attempt_at,
        error=job.error,
        results=results,
    )
