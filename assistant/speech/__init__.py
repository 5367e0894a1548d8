"""The speech stages: VAD gate, wake word, endpointing, ASR and TTS.

Engines here are synchronous; :mod:`assistant.pipeline` runs them in worker threads.
"""
