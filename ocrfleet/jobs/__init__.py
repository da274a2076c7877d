"""The job contract shared by producers (``ocrfleet.producer``) and workers (``ocrfleet.tasks``):
the spec schema and its validation (``spec``), webhook signing (``signing``), and the names
both sides must agree on (``contract``: task names, result schema id, ``JobStatus``, Redis keys,
S3 result keys). Nothing here imports the producer, the tasks or the workers."""
