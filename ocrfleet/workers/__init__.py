"""Worker side: the Celery app (app.py), per-process model cache (models.py), logs, metrics."""
