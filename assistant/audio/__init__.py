"""Audio in and out: files, microphones, speakers, resampling.

Inside the assistant, audio is always **16 kHz mono int16**, cut into frames of
:data:`FRAME_MS` milliseconds (:data:`FRAME_SAMPLES` samples). Sources convert to that on the
way in (soxr resampling, channel mixdown); sinks resample replies to whatever rate the speaker
or output file wants on the way out.
"""

from __future__ import annotations

from .io import (
    FRAME_MS,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    AudioSink,
    AudioSource,
    FileSource,
    PacedSink,
    WavSink,
    ArraySource,
    duration_s,
    read_audio,
    resample,
    to_int16,
    write_wav,
)

__all__ = [
    "ArraySource",
    "AudioSink",
    "AudioSource",
    "FRAME_MS",
    "FRAME_SAMPLES",
    "FileSource",
    "PacedSink",
    "SAMPLE_RATE",
    "WavSink",
    "duration_s",
    "read_audio",
    "resample",
    "to_int16",
    "write_wav",
]
