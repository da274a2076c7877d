"""Inference engines behind one protocol (``base.Backend``); ``select`` picks one."""
