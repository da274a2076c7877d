"""Celery task bodies: recognise a job (recognize.py), deliver a webhook (webhooks.py).
The job itself runs in pipeline.py, which knows nothing about Celery."""
