"""Helpers for testing the assistant and tool plugins without a sound card or a network.

* :mod:`assistant.testing.fake_sounddevice` — a fake sound card (the one I/O boundary CI cannot run).
"""
