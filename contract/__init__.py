"""The contract between the Lambdas (`lambdas/`) and the face-embedding app (`gpu_app/`).

Both sides import these modules instead of holding a copy each, so a rule cannot drift between
them. Standard library only: the Lambda zips carry this package and their cold start stays cheap.

* `errors`: ConfigError, the one error for a missing or wrong setting.
* `limits`: how many files one request carries, and who decides.
* `health`: the shape of the app's `GET /health` document and its parser.
* `manifest`: the manifest-line format of bulk embedding jobs, parsed one way.
* `media`: which object keys are images, videos and manifests.
* `names`: the collection-name rule.
* `batch_job`: AWS Batch job environment variable names, runnable script suffixes, exit codes.
"""

from contract.errors import ConfigError

__all__ = ["ConfigError"]
