"""Synthetic multimodal sentiment sets in the MMSA on-disk layout, generated offline and deterministically.

Run::

    python -m msa.data.synthetic <root> [--family demo|hard] [--flavour sims|mosi] [--n-clips N] [--seed S]

CH-SIMS and CMU-MOSI cannot be shipped, so the demo, the tests and the studies read sets that this
package draws. They are laid out exactly like the real ones (``label.csv`` + ``Raw/<video_id>/<clip_id>.mp4``;
SIMS-style ids ``video_0001``/``0001``, read them as strings). Two families, two flavours each:

=========  ================================================================  ===========  ==============
family     what it is                                                        SIMS-like    MOSI-like
=========  ================================================================  ===========  ==============
``demo``   easy cues, noise-free labels: the CPU demo learns it in minutes     ``demo``     ``demo_mosi``
``hard``   cues only in face, voice and words; voted labels; conflict clips;   ``hard``     ``hard_mosi``
           varied durations, frame rates, sizes, sample rates and channels
=========  ================================================================  ===========  ==============

The modules follow what generation does:

    grid.py     the label grid, the label.csv columns, ids and the split plan (shared)
    demo.py     the demo family: cue <-> label mappings and the plan of its clips
    hard.py     the hard family: lexicon with negation, voice and face cues, annotator votes, its plan
    render.py   frames, waveform and the mp4 of a clip (knows nothing about labels)
    layout.py   writing a set, ensure() with its manifest, the CLI

Everything is a function of the seed: the same parameters give the same label.csv bytes and the same
decoded frames and audio (the encoders run single-threaded for that reason).
"""

from msa.data.synthetic.demo import (FLAVOURS, VERSION, WEIGHTS, Clip, combine, face_label, face_params,
                                     label_rows, plan, text_label, transcript, voice_label, voice_params)
from msa.data.synthetic.grid import CLIPS_PER_VIDEO, COLUMNS, MODES, STEP, snap
from msa.data.synthetic.layout import (AAC_RATES, FAMILIES, MANIFEST, ensure, ensure_hard, generate,
                                       generate_hard, main)
from msa.data.synthetic.render import Face, Speaker, Take, Voice, render_audio, render_frames, write_mp4

__all__ = [
    "AAC_RATES", "CLIPS_PER_VIDEO", "COLUMNS", "FAMILIES", "FLAVOURS", "MANIFEST", "MODES", "STEP", "VERSION",
    "WEIGHTS", "Clip", "Face", "Speaker", "Take", "Voice", "combine", "ensure", "ensure_hard", "face_label",
    "face_params", "generate", "generate_hard", "label_rows", "main", "plan", "render_audio", "render_frames",
    "snap", "text_label", "transcript", "voice_label", "voice_params", "write_mp4",
]
