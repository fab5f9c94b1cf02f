"""Command-line guard: compose the config once before Hydra runs, so that a bad override
(``hint=maybe``, a misspelled key, an unknown group option) fails with one line naming the key
instead of a stack trace."""

from __future__ import annotations

import re
import sys
from pathlib import Path


def _is_sweep(args: list[str]) -> bool:
    # Multirun values (a,b / range() / glob()) are composed per job by Hydra itself.
    return any(a in ("-m", "--multirun") or a.startswith("hydra.mode") for a in args)


def one_line(e: BaseException) -> str:
    """``key: reason`` from a Hydra/OmegaConf error, whose useful part is often in ``__cause__``."""
    text = str(e.__cause__ or e)
    key = re.search(r"full_key: (\S+)", text)
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    reason = lines[0] if lines else type(e).__name__
    if "Available options" in str(e):  # unknown group option: list the choices on the same line
        opts = re.findall(r"^\t(\S+)$", str(e), flags=re.M)
        reason = f"{str(e).splitlines()[0]} (options: {', '.join(opts)})"
    return f"{key.group(1)}: {reason}" if key else reason


def precheck(args: list[str], config_dir: Path, config_name: str = "train") -> None:
    """Exit with ``error: <key>: <reason>`` when the overrides cannot compose or validate."""
    overrides = [a for a in args if not a.startswith("-")]
    import msa.config  # noqa: F401  registers the schema
    from msa.config import ConfigError, check_added_keys, validate

    try:  # sweeps too: +sft.max_epoch=1,2 is as silent in every job
        check_added_keys([a for a in args if a.startswith("+")], config_dir)
    except ConfigError as e:
        sys.exit(f"error: {e}")
    if _is_sweep(args) or any(a.startswith("--") for a in args):  # --help, --cfg, --info: Hydra's own
        return
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir.resolve()), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=False)
        from omegaconf import OmegaConf

        # ${hydra:...} is unavailable outside a run; resolve what validate() reads without it.
        OmegaConf.set_struct(cfg, False)
        cfg.paths.output_dir = "."
        validate(cfg)
    except ConfigError as e:
        sys.exit(f"error: {e}")
    except Exception as e:  # Hydra/OmegaConf: take the first line and the full_key if present
        sys.exit(f"error: {one_line(e)}")
    finally:
        GlobalHydra.instance().clear()
