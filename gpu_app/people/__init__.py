"""People: faces grouped into identities per collection, named, merged and verified.

`base` holds the store protocol, `clustering` the density rule (pure functions), `embedded` the
SQLite store beside the embedded index, `elasticsearch` the store beside an Elasticsearch index,
and `directory` the operations the API, the CLI and the Batch materialize step share.
"""
