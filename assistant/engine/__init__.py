"""The turn engine: small processors with one job each (see ``docs/architecture.md``).

* :mod:`.context` — whose turn it is (origin, area, how to ask them);
* :mod:`.arbiter` — one turn at a time, from every source; the one way to interrupt;
* :mod:`.channels` — where an answer goes (text, an API caller) and how questions come back;
* :mod:`.voice` — a microphone and its speaker: wake word, endpointing, turns, follow-ups;
* :mod:`.recognizer` — speech to text: speculative, partial, final, second pass;
* :mod:`.speaker` — text to speech to the sink, as a cancellable task;
* :mod:`.timing` — one per-turn timing aggregator for the API, logs, metrics and the TUI.

:class:`assistant.pipeline.Pipeline` wires them for one device.
"""
