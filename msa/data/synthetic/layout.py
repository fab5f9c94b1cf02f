"""Writing a synthetic set in the MMSA layout, reusing it when it is already there, and the CLI.

    <root>/label.csv                      video_id,clip_id,text,label,label_T,label_A,label_V,annotation,mode[,conflict]
    <root>/Raw/<video_id>/<clip_id>.mp4   H.264 video + AAC audio
    <root>/synthetic.json                 manifest, written last: the family, parameters and VERSION

A set is written into a hidden sibling folder and renamed into place, so an interrupted run never
leaves a folder that looks complete; :func:`ensure` regenerates only when the manifest differs.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Iterator, Sequence

import numpy as np

from msa.data.synthetic import demo, hard, render
from msa.data.synthetic.grid import check_splits
from msa.data.specs import get_spec

log = logging.getLogger(__name__)

MANIFEST = "synthetic.json"
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
_OWN_ENTRIES = {"label.csv", "Raw", MANIFEST}  # what a set holds; anything else in root is not ours to delete
FAMILIES: dict[str, ModuleType] = {"demo": demo, "hard": hard}


def _int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def demo_params(flavour: str, n_clips: int, seed: int, seconds: float, size: int, fps: int,
                sample_rate: int, splits: Sequence[float], disagree: float, text_conflict: float | None = None) -> dict:
    """Validated generation parameters of a demo set as a JSON-ready dict (also what the manifest stores).

    ``text_conflict`` (the ``study`` set, :func:`msa.data.synthetic.demo.plan`) is stored only when set, so
    the demo sets' manifests stay as they were."""
    if flavour not in demo.FLAVOURS:
        raise ValueError(f"flavour must be one of {sorted(demo.FLAVOURS)}, got {flavour!r}")
    n_clips, seed, fps = _int("n_clips", n_clips, 1), _int("seed", seed, 0), _int("fps", fps, 1)
    size = _int("size", size, 32)
    if size % 2:
        raise ValueError(f"size must be even (yuv420p), got {size}")
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and 0 < seconds <= 60):
        raise ValueError(f"seconds must be in (0, 60], got {seconds!r}")
    if sample_rate not in AAC_RATES:
        raise ValueError(f"sample_rate must be one of {AAC_RATES} (AAC), got {sample_rate!r}")
    splits = check_splits(splits)
    if not 0 <= disagree <= 1:
        raise ValueError(f"disagree must be in [0, 1], got {disagree!r}")
    params = dict(flavour=flavour, n_clips=n_clips, seed=seed, seconds=float(seconds), size=size, fps=fps,
                  sample_rate=int(sample_rate), splits=splits, disagree=float(disagree))
    if text_conflict is not None:
        if isinstance(text_conflict, bool) or not (isinstance(text_conflict, (int, float)) and 0 <= text_conflict <= 0.6):
            raise ValueError(f"text_conflict must be in [0, 0.6] (a share of all clips, taken from the polar ones), "
                             f"got {text_conflict!r}")
        params["text_conflict"] = float(text_conflict)
    return params


def hard_params(flavour: str, n_clips: int, seed: int, splits: Sequence[float], conflict: float) -> dict:
    """Validated generation parameters of a hard set (the family fixes the media properties itself)."""
    hard.check_flavour(flavour)
    n_clips, seed = _int("n_clips", n_clips, 1), _int("seed", seed, 0)
    splits = check_splits(splits)
    if not (isinstance(conflict, (int, float)) and 0 <= conflict <= 0.8):
        raise ValueError(f"conflict must be in [0, 0.8], got {conflict!r}")
    return dict(family="hard", flavour=flavour, n_clips=n_clips, seed=seed, splits=splits, conflict=float(conflict))


def _family(params: dict) -> ModuleType:
    return FAMILIES[params.get("family", "demo")]  # demo manifests predate the family key


def _plan(params: dict) -> list:
    if _family(params) is hard:
        return hard.plan(params["n_clips"], flavour=params["flavour"], seed=params["seed"], splits=params["splits"],
                         conflict=params["conflict"])
    return demo.plan(params["n_clips"], flavour=params["flavour"], seed=params["seed"], splits=params["splits"],
                     disagree=params["disagree"], text_conflict=params.get("text_conflict"))


def _manifest(params: dict) -> dict:
    family = _family(params)
    dataset = family.FLAVOURS[params["flavour"]]
    manifest = dict(version=family.VERSION, dataset=dataset, weights=list(family.WEIGHTS),
                    scale=get_spec(dataset).score_max, params=params)
    return manifest


def _write_set(out: Path, params: dict) -> None:
    """Every file of a set under ``out``; the manifest goes last, so its presence means complete."""
    family = _family(params)
    clips = _plan(params)
    start = time.perf_counter()
    for k, clip in enumerate(clips, 1):
        frames, audio, fps, sample_rate = family.render_clip(clip, params)
        folder = out / "Raw" / clip.video_id
        folder.mkdir(parents=True, exist_ok=True)
        render.write_mp4(folder / f"{clip.clip_id}.mp4", frames, audio, fps, sample_rate, fast_aac=family is hard)
        if k % 200 == 0:
            log.info("synthetic set %s: %d of %d clips (%.0f s)", out.name, k, len(clips), time.perf_counter() - start)

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=family.COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(family.label_rows(clips, params["flavour"]))
    (out / "label.csv").write_text(buf.getvalue(), encoding="utf-8")
    (out / MANIFEST).write_text(json.dumps(_manifest(params), indent=2) + "\n", encoding="utf-8")


def _manifest_matches(root: Path, params: dict) -> bool:
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    expected = _manifest(params)
    return (manifest.get("version") == expected["version"] and manifest.get("dataset") == expected["dataset"]
            and manifest.get("params") == json.loads(json.dumps(params)) and (root / "label.csv").is_file())


def _check_replaceable(root: Path) -> None:
    """Refuse to delete a folder that holds anything but a (possibly half-written) synthetic set."""
    if not root.exists():
        return
    if not root.is_dir():
        raise FileExistsError(f"synthetic set root {root} exists and is not a folder")
    foreign = sorted(p.name for p in root.iterdir() if p.name not in _OWN_ENTRIES)
    if foreign:
        raise FileExistsError(f"synthetic set root {root} holds files that are not part of a synthetic set "
                              f"({', '.join(foreign[:5])}); refusing to replace it")


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` so that concurrent ensure() calls (DDP ranks) generate once."""
    try:
        import fcntl
    except ImportError:  # no flock on this platform: callers must not race
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _generate_locked(root: Path, params: dict) -> None:
    _check_replaceable(root)
    parent = root.parent
    for stale in [*parent.glob(f".{root.name}.tmp-*"), *parent.glob(f".{root.name}.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)  # left by a crashed run (we hold the lock)
    tmp = parent / f".{root.name}.tmp-{os.getpid()}"
    try:
        _write_set(tmp, params)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if root.exists():
        old = parent / f".{root.name}.old-{os.getpid()}"
        root.rename(old)
        tmp.rename(root)
        shutil.rmtree(old)
    else:
        tmp.rename(root)


def _materialise(root: str | os.PathLike, params: dict, *, force: bool) -> Path:
    root = Path(root)
    if not force and _manifest_matches(root, params):  # the common case, without touching the lock
        return root
    root.absolute().parent.mkdir(parents=True, exist_ok=True)
    with _locked(root.absolute().parent):
        if force or not _manifest_matches(root, params):  # another process may have finished it meanwhile
            _generate_locked(root.absolute(), params)
    return root


def generate(root: str | os.PathLike, *, flavour: str = "sims", n_clips: int = 300, seed: int = 0,
             seconds: float = 2.0, size: int = 64, fps: int = 10, sample_rate: int = 16000,
             splits: Sequence[float] = demo.DEFAULT_SPLITS, disagree: float = 0.25) -> Path:
    """Write a fresh demo set at ``root``, replacing an older synthetic set there.

    A ``root`` holding other files is an error, not deleted.
    """
    params = demo_params(flavour, n_clips, seed, seconds, size, fps, sample_rate, splits, disagree)
    return _materialise(root, params, force=True)


def ensure(root: str | os.PathLike, *, flavour: str = "sims", n_clips: int = 300, seed: int = 0,
           seconds: float = 2.0, size: int = 64, fps: int = 10, sample_rate: int = 16000,
           splits: Sequence[float] = demo.DEFAULT_SPLITS, disagree: float = 0.25,
           text_conflict: float | None = None) -> Path:
    """The demo set at ``root`` with these parameters: reused if its manifest matches, generated otherwise
    (``text_conflict``: the ``study`` set)."""
    params = demo_params(flavour, n_clips, seed, seconds, size, fps, sample_rate, splits, disagree, text_conflict)
    return _materialise(root, params, force=False)


def generate_hard(root: str | os.PathLike, *, flavour: str = "sims", n_clips: int = 2000, seed: int = 0,
                  splits: Sequence[float] = hard.DEFAULT_SPLITS, conflict: float = 0.25) -> Path:
    """Write a fresh hard set at ``root`` (see :mod:`msa.data.synthetic.hard`), replacing an older one."""
    return _materialise(root, hard_params(flavour, n_clips, seed, splits, conflict), force=True)


def ensure_hard(root: str | os.PathLike, *, flavour: str = "sims", n_clips: int = 2000, seed: int = 0,
                splits: Sequence[float] = hard.DEFAULT_SPLITS, conflict: float = 0.25) -> Path:
    """The hard set at ``root`` with these parameters: reused if its manifest matches, generated otherwise."""
    return _materialise(root, hard_params(flavour, n_clips, seed, splits, conflict), force=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m msa.data.synthetic",
                                     description="Write a synthetic sentiment set in the MMSA layout.")
    parser.add_argument("root", help="folder to write (label.csv, Raw/, synthetic.json)")
    parser.add_argument("--family", choices=sorted(FAMILIES), default="demo",
                        help="demo: easy cues, the CPU demo's set; hard: no shortcuts, noisy votes, conflict clips")
    parser.add_argument("--flavour", choices=["mosi", "sims"], default="sims",
                        help="sims: labels in [-1, 1] ('demo' / 'hard'); mosi: [-3, 3] ('demo_mosi' / 'hard_mosi')")
    parser.add_argument("--n-clips", type=int, default=None, help="default: 300 (demo), 2000 (hard)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=2.0, help="demo only")
    parser.add_argument("--size", type=int, default=64, help="demo only")
    parser.add_argument("--fps", type=int, default=10, help="demo only")
    parser.add_argument("--sample-rate", type=int, default=16000, help="demo only")
    parser.add_argument("--conflict", type=float, default=0.25, help="hard only: share of conflict clips")
    parser.add_argument("--text-conflict", type=float, default=None,
                        help="demo only: share of text-conflict clips (the study set: 0.25); default as disagree draws")
    parser.add_argument("--splits", type=float, nargs=3, default=None, metavar=("TRAIN", "VALID", "TEST"))
    parser.add_argument("--force", action="store_true", help="regenerate even if a matching set exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.family == "hard":
        params = hard_params(args.flavour, args.n_clips or 2000, args.seed, args.splits or hard.DEFAULT_SPLITS,
                             args.conflict)
    else:
        params = demo_params(args.flavour, args.n_clips or 300, args.seed, args.seconds, args.size, args.fps,
                             args.sample_rate, args.splits or demo.DEFAULT_SPLITS, 0.25, args.text_conflict)
    start = time.perf_counter()
    path = _materialise(args.root, params, force=args.force)
    dataset = _family(params).FLAVOURS[args.flavour]
    print(f"{path}: {params['n_clips']} clips, family {args.family}, flavour {args.flavour} ({dataset}), "
          f"{time.perf_counter() - start:.1f} s")
    return 0
