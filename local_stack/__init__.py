"""The whole system on one machine (`make run`): moto as AWS, the real Lambda handlers, a Batch
executor and the app on CPU. Not part of any Lambda zip (scripts/package_lambdas.py packs only the
function folders, `lambdas/common` and `contract`). See README.md here.
"""
