"""The run directory and its crash-safe writes.

Layout of RUN_DIR::

    RUN_DIR/options.json              the TrainOptions the run was started (or resumed) with
    RUN_DIR/metrics.jsonl             one JSON object per line: {"step", "split", "loss", ...}
    RUN_DIR/last/                     newest checkpoint: config.json, model.safetensors,
                                      tokenizer.json, train_state.pt (for --resume)
    RUN_DIR/best/                     lowest validation NLL so far (same files, no train_state)
    RUN_DIR/checkpoints/step-000500/  the newest `keep_last` step checkpoints (as last/)
    RUN_DIR/tensorboard/              TensorBoard events, when tensorboard is installed

Every checkpoint directory is written complete under a temporary hidden name beside its target
and then swapped into place (`midi_data.files.replace_dir`: one rename, or an atomic exchange
of the two directories on Linux), so a SIGKILL at any instant leaves either the old or the new
checkpoint, both whole. Elsewhere the old one is moved aside first and `recover_run_dir` puts
it back if the process died between the two renames.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from midi_data.files import (
    OLD_PREFIX,
    TMP_PREFIX,
    atomic_write,
    atomic_write_text,
    replace_dir,
    temp_dir_beside,
)

from ..checkpoint import CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, read_meta
from .options import TrainError

STATE_FILE = "train_state.pt"
METRICS_FILE = "metrics.jsonl"


LOCK_FILE = ".lock"


def lock_run_dir(run_dir: Path) -> Any:
    """Hold RUN_DIR for this process (an flock on RUN_DIR/.lock, released when the process
    ends, however it ends): a second `train` on the same RUN_DIR stops with one line instead
    of writing over the first. Returns the open lock file; keep it."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / LOCK_FILE, "a+")  # noqa: SIM115 (held for the whole run)
    except OSError as e:
        raise TrainError(f"cannot write to run directory {run_dir}: {e.strerror or e}") from None
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, as before
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise TrainError(
            f"run directory {run_dir} is in use by another training process; wait for it "
            "or choose another --out"
        ) from None
    return handle


def open_run_dir(run: Path, resume: bool, is_main: bool) -> tuple[Any, bool]:
    """Check RUN_DIR before training into it: refuse to overwrite a run (or to resume none),
    take its lock and find out early whether it is writable (rank 0 only). Returns (the lock,
    None on other ranks; whether a `--resume` starts over because the run stopped before its
    first checkpoint)."""
    if run.exists() and not run.is_dir():
        raise TrainError(f"run directory {run} exists and is not a directory")
    lock = lock_run_dir(run) if is_main else None  # before looking inside: another writer?
    has_run = (run / "last").exists() or (run / METRICS_FILE).exists()
    if resume and run.is_dir() and is_main:
        recover_run_dir(run)  # a kill between two renames (non-Linux) is undone here
    restarted = False
    if resume and not (run / "last" / STATE_FILE).is_file():
        if not has_run:
            raise TrainError(f"nothing to resume in {run} (no last/{STATE_FILE})")
        restarted = True  # stopped before its first checkpoint: nothing to continue
    if not resume and has_run:
        raise TrainError(
            f"{run} already holds a training run; pass --resume to continue it "
            "or choose another --out"
        )
    if is_main:
        try:
            probe = run / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise TrainError(f"cannot write to run directory {run}: {e.strerror or e}") from None
    return lock, restarted


def read_resume_state(run: Path, tokenizer: Any, data_dir: str) -> dict[str, Any]:
    """RUN_DIR/last's train state, with its config.json as state["meta"]; refused when the
    checkpoint's vocabulary is not the data's (`tokenizer`, read from `data_dir`)."""
    last = run / "last"
    meta = read_meta(last)
    data_vocab = {"preset": tokenizer.preset, "vocab_size": tokenizer.vocab_size}
    ckpt_vocab = {k: meta.get("tokenizer", {}).get(k) for k in data_vocab}
    if ckpt_vocab != data_vocab or meta["model"].get("vocab_size") != data_vocab["vocab_size"]:
        raise TrainError(
            f"checkpoint {last} was trained on a different vocabulary "
            f"({ckpt_vocab['preset']}, {ckpt_vocab['vocab_size']} tokens) than data "
            f"{data_dir} ({data_vocab['preset']}, {data_vocab['vocab_size']} tokens)"
        )
    state = load_train_state(last / STATE_FILE)
    state["meta"] = meta
    return state


def step_dir_name(step: int) -> str:
    return f"step-{step:06d}"


def recover_run_dir(run_dir: Path) -> None:
    """Undo what a killed writer left behind: half-built temp folders are deleted, and a
    checkpoint moved aside (non-Linux fallback) is put back when its target is missing."""
    for parent in (run_dir, run_dir / "checkpoints"):
        if not parent.is_dir():
            continue
        for p in parent.iterdir():
            if p.name.startswith(OLD_PREFIX):
                target = p.with_name(p.name[len(OLD_PREFIX) :])
                if target.exists():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    os.rename(p, target)
            elif p.name.startswith(TMP_PREFIX):
                shutil.rmtree(p, ignore_errors=True)


def prune_step_dirs(run_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` RUN_DIR/checkpoints/step-* folders.

    Each is first renamed to a hidden temp name (one atomic rename), then deleted: a kill
    during the deletion leaves a hidden folder that `recover_run_dir` removes, never a
    half-deleted `step-N` that looks like a checkpoint."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return
    steps = sorted(p for p in root.iterdir() if p.name.startswith("step-") and p.is_dir())
    for p in steps[:-keep] if keep > 0 else steps:
        doomed = p.with_name(f"{TMP_PREFIX}{p.name}-pruned")
        os.rename(p, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


def link_copy_dir(src: Path, target: Path) -> None:
    """Materialize checkpoint `src` as `target` by hard links (checkpoint files are replaced,
    never modified in place, so sharing inodes is safe), falling back to copies."""
    tmp = temp_dir_beside(target)
    try:
        for name in (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE, STATE_FILE):
            if not (src / name).exists():
                continue
            try:
                os.link(src / name, tmp / name)
            except OSError:
                shutil.copy2(src / name, tmp / name)
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already unless a copy failed


def remove_if_unused(run_dir: Path) -> None:
    """Remove a run directory holding nothing but its lock file: what a `train` that failed
    before writing anything leaves (it made the folder to lock it)."""
    try:
        if [p.name for p in run_dir.iterdir()] == [LOCK_FILE]:
            (run_dir / LOCK_FILE).unlink()
            run_dir.rmdir()
    except OSError:
        pass  # not ours to insist on: the error being reported matters more


# --- train_state.pt ---------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Every random generator a training step may touch, as tensors and plain values only
    (so the file loads with `torch.load(weights_only=True)`)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):  # fewer GPUs now than when saved
            torch.cuda.set_rng_state_all(state["cuda"])


def save_train_state(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda p: torch.save(state, p))


def load_train_state(path: Path) -> dict[str, Any]:
    """Read train_state.pt without running code (weights_only=True)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or foreign file: one line for the user
        raise ValueError(f"cannot read {path}: {str(e).splitlines()[0]}") from None


# --- metrics.jsonl ----------------------------------------------------------------------------


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    with open(run_dir / METRICS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line cut short by a kill
            rows.append(json.loads(line))
    return rows


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop lines logged after `step` (by a run killed after its last checkpoint), so a resumed
    run's metrics.jsonl reads as if it had never stopped."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return
    rows = [r for r in read_metrics(run_dir) if r.get("step", 0) <= step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
