"""A piper voice split at its decoder, so a sentence's first audio is out before the rest is made.

A piper voice is one VITS network: text encoder, duration predictor and flow turn phoneme ids into
a latent sequence ``z`` ([1, 192, frames], one frame per ``hop`` output samples: 256 for every
piper voice), then a HiFi-GAN decoder turns ``z`` into audio. The decoder is convolutional: a frame
of audio depends only on nearby frames of ``z``. So the graph is cut at the decoder's input (the
tensor the node ``/dec/conv_pre/Conv`` reads) into two onnxruntime sessions — the cut Piper's own
streaming export makes (``piper_train.export_onnx_streaming``: an encoder and a decoder model) —
and ``z`` is decoded in pieces, each with :data:`PAD_FRAMES` frames of ``z`` on either side that
are decoded and thrown away: the pieces join into exactly the audio the whole sentence decodes to
(checked by the tests; on en_US-joe-medium the largest difference is 0 at 16 frames of context and
0.002 of full scale at 8).

What it gains: the encoder part costs ~30-60 ms for a short reply on 2 x86 cores and the decoder
~45 ms per second of audio, so a sentence's first :data:`FIRST_FRAMES` frames (0.28 s of speech)
are out before the rest is decoded, and the rest is decoded while they play (the decoder runs ~20x
faster than real time). Measured on the 22 fast-path replies of the ``turn`` benchmark, each a
new text (Intel Xeon 2.8 GHz, 2 cores, 2 threads, two runs): first audio p50 63 and 65 ms against
94 and 112 ms for piper's whole sentence.

Loudness: piper scales each sentence to peak at full scale, which needs the whole sentence. A
streamed sentence is scaled by one gain per voice instead (:meth:`StreamedVoice.calibrate`: the
voice's loudest peak over a few calibration sentences brought to :data:`PEAK_TARGET`), so every
sentence keeps the voice's own loudness relative to the others; the rare sample above
:data:`KNEE` is bent by :func:`soft_limit`, never clipped. On 87 benchmark sentences × 3 draws
(en_US-joe-medium): RMS level 3.2 dB below piper's normalised sentences at the median (-6.3 to
+0.7), 84 of 261 sentences with any sample above the knee, at most 0.08 % of a sentence's samples.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["FIRST_FRAMES", "KNEE", "NEXT_FRAMES", "PAD_FRAMES", "PEAK_TARGET", "StreamedVoice", "soft_limit"]

DECODER_NODE = "/dec/conv_pre/Conv"
"""The first node of the VITS decoder in piper's ONNX export; its first input is ``z`` (already masked)."""

FIRST_FRAMES = 24
"""Latent frames decoded first: 0.28 s of audio at 22.05 kHz — about the first word — in ~20 ms."""

NEXT_FRAMES = 96
"""Latent frames per later piece (1.1 s): few decoder calls, each far ahead of playback."""

PAD_FRAMES = 16
"""Frames of ``z`` decoded on each side of a piece and dropped, so the pieces join exactly."""

PEAK_TARGET = 0.9
"""Peak, as a fraction of full scale, the voice's loudest calibration sentence is brought to."""

KNEE = 0.8
"""Level above which :func:`soft_limit` bends samples smoothly towards full scale instead of clipping."""

CALIBRATION = ("Turned on the kitchen light.", "What is the capital of France?", "It's a quarter past three.",
               "Sorry, I can't help with that!", "Set a timer for five minutes.")


class StreamedVoice:
    """A piper ``.onnx`` voice as two sessions: phoneme ids → ``z``, and ``z`` → audio in pieces.

    Use :meth:`load`; it returns None (and the caller keeps the whole-sentence path) for a voice
    this cut does not fit (a multi-speaker voice, whose decoder also reads the speaker embedding,
    or an export with other node names) or when the ``onnx`` package is missing.
    """

    def __init__(self, front: Any, back: Any, z_name: str, front_inputs: Sequence[str]) -> None:
        self.front = front
        self.back = back
        self.z_name = z_name
        self.front_inputs = tuple(front_inputs)
        self.hop = 256
        """Output samples per latent frame (measured by :meth:`calibrate`)."""
        self.gain = 1.0
        """Scale applied to every sentence (:meth:`calibrate`)."""

    @classmethod
    def load(cls, voice_path: Path, session_options: Any) -> "StreamedVoice | None":
        """Cut the voice at its decoder and open both parts with ``session_options``; None when the
        cut does not fit this voice (logged). ~0.5 s and ~60 MB of extra memory while cutting."""
        try:
            import onnx  # noqa: PLC0415
            import onnx.utils  # noqa: PLC0415
            import onnxruntime  # noqa: PLC0415
        except ImportError:
            log.info("onnx is not installed: piper synthesises whole sentences (pip install onnx for streamed synthesis)")
            return None
        try:
            model = onnx.load(str(voice_path))
            inputs = [i.name for i in model.graph.input]
            dec = next((n for n in model.graph.node if n.name == DECODER_NODE), None)
            if dec is None or set(inputs) != {"input", "input_lengths", "scales"}:
                log.info("piper voice %s: not a single-speaker VITS export this cut knows; whole sentences", voice_path.name)
                return None
            z_name = dec.input[0]
            extractor = onnx.utils.Extractor(model)
            front = extractor.extract_model(inputs, [z_name])
            back = extractor.extract_model([z_name], [o.name for o in model.graph.output])
            if [i.name for i in back.graph.input] != [z_name]:
                return None
            providers = ["CPUExecutionProvider"]
            # two sessions run one after the other: a thread pool left spinning after the encoder's
            # run takes the cores from the decoder's (first piece of 22 fast-path replies on 2 x86
            # cores, p50: 104-110 ms spinning, 58-69 ms not; the whole sentence took 89-129 ms)
            session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            return cls(onnxruntime.InferenceSession(front.SerializeToString(), sess_options=session_options, providers=providers),
                       onnxruntime.InferenceSession(back.SerializeToString(), sess_options=session_options, providers=providers),
                       z_name, inputs)
        except Exception as exc:  # noqa: BLE001 - any failure: the whole-sentence path still works
            log.warning("piper voice %s cannot be cut for streamed synthesis (%s: %s); whole sentences", voice_path.name, type(exc).__name__, exc)
            return None

    def latent(self, phoneme_ids: Sequence[int], scales: Sequence[float]) -> np.ndarray:
        """``z`` for one sentence: float32 [1, 192, frames]. ``scales``: (noise_scale, length_scale, noise_w)."""
        x = np.asarray([phoneme_ids], dtype=np.int64)
        feed = {"input": x, "input_lengths": np.asarray([x.shape[1]], dtype=np.int64), "scales": np.asarray(scales, dtype=np.float32)}
        return self.front.run(None, feed)[0]

    def decode(self, z: np.ndarray) -> Iterator[np.ndarray]:
        """The audio of ``z`` (float32 mono, unscaled), in pieces: :data:`FIRST_FRAMES` frames, then
        :data:`NEXT_FRAMES` at a time."""
        frames = z.shape[2]
        start, size = 0, FIRST_FRAMES
        while start < frames:
            end = frames if frames - (start + size) < FIRST_FRAMES // 2 else start + size  # no sliver at the end
            lo, hi = max(0, start - PAD_FRAMES), min(frames, end + PAD_FRAMES)
            y = np.asarray(self.back.run(None, {self.z_name: z[:, :, lo:hi]})[0], dtype=np.float32).reshape(-1)
            offset = (start - lo) * self.hop
            yield y[offset : offset + (end - start) * self.hop]
            start, size = end, NEXT_FRAMES

    def calibrate(self, voice: Any, scales: Sequence[float], draws: int = 2) -> float:
        """Set :attr:`hop` and :attr:`gain` from :data:`CALIBRATION` said ``draws`` times by
        ``voice`` (a ``piper.PiperVoice``, for its phonemizer) with ``scales`` (noise_scale,
        length_scale, noise_w: the sampling noise raises the peaks — calibrated without it, 53 of
        261 sentences of the benchmarks reached full scale); returns the gain. ~0.5 s on 2 x86
        cores, once per voice."""
        peak = 0.0
        for text in CALIBRATION * (draws if scales[0] or scales[2] else 1):
            for phonemes in voice.phonemize(text):
                if not phonemes:
                    continue
                z = self.latent(voice.phonemes_to_ids(phonemes), scales)
                y = np.asarray(self.back.run(None, {self.z_name: z})[0]).reshape(-1)
                self.hop = max(1, y.shape[0] // z.shape[2])
                peak = max(peak, float(np.abs(y).max()))
        self.gain = PEAK_TARGET / peak if peak > 1e-4 else 1.0
        return self.gain


def soft_limit(x: np.ndarray) -> np.ndarray:
    """``x`` (float audio) with every sample louder than :data:`KNEE` bent towards full scale
    (``KNEE + (1 - KNEE) * tanh((|x| - KNEE) / (1 - KNEE))``, sign kept): a sentence louder than the
    calibration's is rounded off instead of clipped; quieter samples are untouched."""
    over = np.abs(x) > KNEE
    if not over.any():
        return x
    y = x.copy()
    a = np.abs(x[over])
    y[over] = np.sign(x[over]) * (KNEE + (1.0 - KNEE) * np.tanh((a - KNEE) / (1.0 - KNEE)))
    return y
