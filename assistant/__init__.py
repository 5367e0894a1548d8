"""Jarvis: an on-device voice assistant.

Where things are:

* :mod:`assistant.pipeline` — the voice loop (frames → wake → utterance → ASR → controller → TTS).
* :mod:`assistant.speech` — the stages: VAD, wake word, endpointing, ASR, TTS.
* :mod:`assistant.audio` — files, microphones, speakers, resampling.
* :mod:`assistant.controller` — the router: template fast path, local LLM, remote fallback.
* :mod:`assistant.toolkit` — the tool plugin API (for tool authors).
* :mod:`assistant.store` — the model catalog and store.
* :mod:`assistant.events` — the typed events every stage emits.
* :mod:`assistant.config` — the validated TOML configuration.
"""

__version__ = "0.1.0"
