"""The training loop: one process or one rank of a torchrun job.

Determinism (what makes `--resume` exact): the learning rate is a pure function of the step;
the data windows of step s are a pure function of (seed, s, rank) (midi_data.WindowBatches);
the dropout generator is re-seeded from (seed, rank, step) at every step; weights and AdamW
moments are restored bit for bit. So N steps + resume to N+M equals N+M steps in one go.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_model as st_load_model
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from midi_data import WindowBatches, eval_windows, open_data
from midi_data.files import atomic_write_json, replace_dir, temp_dir_beside

from ..calibration import PrecisionChoice, choose_precision
from ..checkpoint import OPTIONS_FILE, WEIGHTS_FILE, save_checkpoint
from ..evaluation.nll import window_nll
from ..nn import build_model
from ..runtime import autocast, precision_name
from . import state as st
from .distributed import Dist, all_sum, barrier
from .model_choice import arch_name, init_checkpoint, model_config
from .options import TrainError, TrainOptions
from .progress import Progress
from .schedule import learning_rate
from .stopping import stop_on_sigterm


def _step_seed(seed: int, rank: int, step: int) -> int:
    """A distinct, reproducible dropout seed per (run seed, rank, step)."""
    return (seed * 1_000_003 + rank * 7_919 + step * 104_729) % (2**63 - 1)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices and embedding tables; never biases or LayerNorm gains (1-D tensors)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


class Trainer:
    """Holds one run's model, optimizer and data; `run()` trains up to max_steps."""

    def __init__(self, options: TrainOptions, place: Dist, device: torch.device):
        self.opt, self.place, self.device = options, place, device
        self.run_dir = Path(options.out_dir)
        self.data = open_data(options.data_dir)  # a bad data dir fails before RUN_DIR is made
        self._lock, self.restarted = st.open_run_dir(self.run_dir, options.resume, place.is_main)
        self.tokenizer = self.data.tokenizer
        # the sampler's default note limit, recorded beside the weights (rank 0 writes them)
        self.max_note_seconds = self.data.note_length_quantile() if place.is_main else None
        self.pad_id = int(self.tokenizer.pad_id)
        resume_state = None
        if options.resume and not self.restarted:
            resume_state = st.read_resume_state(self.run_dir, self.tokenizer, options.data_dir)
        if self.restarted and place.is_main:
            st.truncate_metrics(self.run_dir, -1)  # the lost steps' lines go with them
            if not options.quiet:
                print(
                    f"{self.run_dir} stopped before its first checkpoint: starting it over",
                    file=sys.stderr,
                    flush=True,
                )
        self.init_dir = init_checkpoint(options, self.tokenizer) if options.init else None
        resumed = resume_state["meta"]["model"] if resume_state is not None else None
        self.config = model_config(options, self.tokenizer, resumed, self.init_dir)
        self.precision = self._choose_precision()
        self.amp_dtype = self.precision.dtype
        torch.manual_seed(options.seed)  # identical initial weights on every rank
        self.model = build_model(self.config).to(device)
        if self.init_dir is not None and resume_state is None:
            st_load_model(self.model, str(self.init_dir / WEIGHTS_FILE), device=str(device))
        self.optimizer = torch.optim.AdamW(
            _param_groups(self.model, options.weight_decay),
            lr=options.lr,
            betas=(options.beta1, options.beta2),
            # One fused kernel over all tensors: 5 ms instead of 19-25 ms per optimizer step
            # for `small` on this project's CPU.
            fused=device.type in ("cpu", "cuda"),
        )
        self.step, self.tokens_seen, self.elapsed = 0, 0, 0.0
        self.best_nll, self.best_step, self.evals_since_best = math.inf, -1, 0
        self.last_valid: float | None = None
        if resume_state is not None:
            self._restore(resume_state)
        self.ddp_model: nn.Module = self.model
        if place.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.ddp_model = DistributedDataParallel(self.model, device_ids=ids)
        self.batches = WindowBatches(
            self.data,
            "train",
            options.seq_len,
            options.batch_size,
            seed=options.seed,
            augment=options.augment,
            rank=place.rank,
            world_size=place.world_size,
        )
        valid = eval_windows(self.data.pieces("valid"), options.seq_len)
        if options.eval_batches:  # the first eval_batches batches' worth, in piece order
            valid = valid[: options.eval_batches * options.batch_size]
        self.valid = valid[place.rank :: place.world_size]  # each rank its share
        self.has_valid = bool(valid)
        self.writer = self._tensorboard() if place.is_main else None

    @property
    def _on(self) -> tuple[Dist, torch.device]:
        return self.place, self.device

    # --- setup --------------------------------------------------------------------------------

    def _choose_precision(self) -> PrecisionChoice:
        """`--precision` for this model's shape; under DDP rank 0 measures for every rank
        (ranks that chose differently would not train alike)."""
        o = self.opt
        mine = None
        if o.precision != "auto" or self.place.is_main:
            mine = choose_precision(
                o.precision, self.device, "train", self.config,
                batch=o.batch_size, length=o.seq_len,
            )  # fmt: skip
        if o.precision != "auto" or not self.place.enabled:
            return mine
        bf16 = all_sum([float(mine is not None and mine.dtype is not None)], *self._on)[0] > 0
        return mine or PrecisionChoice(torch.bfloat16 if bf16 else None, "auto: as rank 0 chose")

    def _restore(self, state: dict[str, Any]) -> None:
        last = self.run_dir / "last"
        st_load_model(self.model, str(last / WEIGHTS_FILE), device=str(self.device))
        self.optimizer.load_state_dict(state["optimizer"])
        st.set_rng_state(state["rng"])
        self.step, self.tokens_seen = int(state["step"]), int(state["tokens_seen"])
        self.elapsed = float(state["elapsed"])
        self.best_nll, self.best_step = float(state["best_nll"]), int(state["best_step"])
        self.evals_since_best = int(state["evals_since_best"])
        self.last_valid = state.get("last_valid")
        if self.place.is_main:
            st.truncate_metrics(self.run_dir, self.step)

    def _tensorboard(self) -> Any:
        if not self.opt.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed: metrics.jsonl is enough
            return None
        return SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.step + 1)

    # --- one step -----------------------------------------------------------------------------

    def _loss(self, model: nn.Module, window: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Mean NLL (nats/token) of a (B, L+1) window's last L tokens given the previous ones;
        pad targets are ignored. Returns (loss, number of scored tokens)."""
        window = window.to(self.device, non_blocking=True)
        inputs, targets = window[:, :-1], window[:, 1:]  # (B, L) each
        with autocast(self.device, self.amp_dtype):
            logits, _ = model(inputs)  # (B, L, V)
        logits = logits.float().reshape(-1, logits.size(-1))  # (B·L, V)
        targets = targets.reshape(-1)  # (B·L,)
        loss = F.cross_entropy(logits, targets, ignore_index=self.pad_id)
        return loss, int((targets != self.pad_id).sum())

    def train_step(self) -> float:
        """One optimizer step over `accumulation` micro-batches; returns the mean loss."""
        opt = self.opt
        clock = self.step + opt.step_offset  # the step a warm start continues (--step-offset)
        lr = learning_rate(
            self.step,
            opt.lr,
            opt.warmup,
            opt.schedule,
            opt.max_steps,
            opt.min_lr_ratio,
            offset=opt.step_offset,
            cooldown=opt.cooldown_steps,
        )
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        torch.manual_seed(_step_seed(opt.seed, self.place.rank, clock))
        self.ddp_model.train()
        total = 0.0
        for micro in range(opt.accumulation):
            window = self.batches[clock * opt.accumulation + micro]
            last = micro == opt.accumulation - 1
            sync = contextlib.nullcontext()
            if self.place.enabled and not last:
                sync = self.ddp_model.no_sync()  # all-reduce once, after the last micro-batch
            with sync:
                loss, _ = self._loss(self.ddp_model, window)
                (loss / opt.accumulation).backward()
            total += float(loss.detach())
        if opt.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), opt.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        per_step = opt.batch_size * opt.seq_len * opt.accumulation * self.place.world_size
        self.tokens_seen += per_step
        mean = total / opt.accumulation
        if not math.isfinite(mean):
            raise TrainError(f"training loss became {mean} at step {self.step}; try a lower --lr")
        return mean

    def validate(self) -> float | None:
        """Validation NLL in nats/token over this run's fixed windows (all ranks together)."""
        if not self.has_valid:
            return None
        nll, count = window_nll(
            self.model, self.valid, self.pad_id, self.opt.batch_size, self.device,
            dtype=self.amp_dtype,
        )  # fmt: skip
        nll, count = all_sum([nll, float(count)], *self._on)
        return nll / count if count else None

    # --- saving -------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The "training" section of config.json: how this checkpoint was made."""
        o = self.opt
        return {
            "arch": arch_name(self.config) if o.init else o.arch,
            "preset": None if o.init else o.preset,
            "init_from": o.init or None,
            "seq_len": o.seq_len,
            "step": self.step,
            "step_offset": o.step_offset,  # a warm start continuing a run of that many steps
            "tokens_seen": self.tokens_seen,
            "batch_size": o.batch_size,
            "accumulation": o.accumulation,
            "world_size": self.place.world_size,
            "global_batch": o.batch_size * o.accumulation * self.place.world_size,
            "lr": o.lr,
            "schedule": o.schedule,
            "precision": precision_name(self.amp_dtype),
            "precision_why": self.precision.reason,
            "seed": o.seed,
            "data_dir": str(Path(o.data_dir).resolve()),
            "valid_nll": self.last_valid,
            "best_valid_nll": None if math.isinf(self.best_nll) else self.best_nll,
            "best_step": self.best_step if self.best_step >= 0 else None,
            "elapsed_seconds": round(self.elapsed, 1),
            "max_note_seconds": _round(self.max_note_seconds),
        }

    def train_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "elapsed": self.elapsed,
            "best_nll": self.best_nll,
            "best_step": self.best_step,
            "evals_since_best": self.evals_since_best,
            "last_valid": self.last_valid,
            "optimizer": self.optimizer.state_dict(),
            "rng": st.rng_state(),
            "schedule": {
                "name": self.opt.schedule,
                "warmup": self.opt.warmup,
                "step_offset": self.opt.step_offset,
                "cooldown": self.opt.cooldown_steps,
            },
            "world_size": self.place.world_size,
        }

    def _write_dir(self, target: Path, with_state: bool) -> None:
        """Build the checkpoint beside `target` and swap it in; a failed write (a full disk:
        OSError, or torch.save's RuntimeError) is one line and leaves no temporary folder."""
        tmp = temp_dir_beside(target)
        try:
            save_checkpoint(tmp, self.model, self.config, self.tokenizer, self.summary())
            if with_state:
                st.save_train_state(tmp / st.STATE_FILE, self.train_state())
            replace_dir(tmp, target)
        except (OSError, RuntimeError) as e:
            reason = (getattr(e, "strerror", None) or str(e)).strip().splitlines()[0]
            raise TrainError(f"cannot save checkpoint {target}: {reason}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def save(self) -> None:
        """Write last/ (with train_state.pt) and checkpoints/step-N/ (rank 0 only)."""
        if self.place.is_main:
            self._write_dir(self.run_dir / "last", with_state=True)
            step_dir = self.run_dir / "checkpoints" / st.step_dir_name(self.step)
            st.link_copy_dir(self.run_dir / "last", step_dir)
            st.prune_step_dirs(self.run_dir, self.opt.keep_last)
        barrier(self.place)

    def save_best(self) -> None:
        if self.place.is_main:
            self._write_dir(self.run_dir / "best", with_state=False)

    # --- the loop -----------------------------------------------------------------------------

    def log(self, record: dict[str, Any]) -> None:
        if not self.place.is_main:
            return
        st.append_metrics(self.run_dir, record)
        if self.writer is not None:
            for key, value in record.items():
                if key not in ("step", "split") and isinstance(value, int | float):
                    self.writer.add_scalar(f"{record['split']}/{key}", value, record["step"])

    def evaluate_and_keep_best(self) -> bool:
        """Validate; keep best/; return True when early stopping says stop."""
        nll = self.validate()
        if nll is None:
            return False
        self.last_valid = nll
        self.log({"step": self.step, "split": "valid", "nll": nll, "ppl": math.exp(min(nll, 50))})
        if nll < self.best_nll:
            self.best_nll, self.best_step, self.evals_since_best = nll, self.step, 0
            self.save_best()
        else:
            self.evals_since_best += 1
        return self.opt.early_stop > 0 and self.evals_since_best >= self.opt.early_stop

    def run(self) -> Path:
        o = self.opt
        if self.step >= o.max_steps:  # a resumed run that is already complete
            return self.run_dir
        if o.early_stop and self.evals_since_best >= o.early_stop:  # it stopped early
            return self.run_dir
        if self.place.is_main:
            # paths resolved: `--resume` works from any working directory
            recorded = {**o.to_dict(), "data_dir": str(Path(o.data_dir).resolve())}
            atomic_write_json(
                self.run_dir / OPTIONS_FILE, {**recorded, "out_dir": str(self.run_dir.resolve())}
            )
        name, why = self.precision.name, self.precision.reason
        self.log({"step": self.step, "split": "setup", "precision": name, "why": why})
        if self.place.is_main and not o.quiet:
            print(f"precision: {name} ({why})", file=sys.stderr, flush=True)
        bar = Progress(o.max_steps, self.step, disabled=o.quiet or not self.place.is_main)
        stopped_early = False
        saved_at = self.step
        window_loss, window_steps, t_log = 0.0, 0, time.perf_counter()
        signals = contextlib.ExitStack()  # SIGTERM: finish the step, save, stop (stopping.py)
        stop = signals.enter_context(stop_on_sigterm(enabled=not self.place.enabled))
        try:
            while self.step < o.max_steps:
                t0 = time.perf_counter()
                loss = self.train_step()
                dt = time.perf_counter() - t0
                self.elapsed += dt
                tokens = o.batch_size * o.seq_len * o.accumulation * self.place.world_size
                bar.update(self.step, loss, tokens / max(dt, 1e-9))
                window_loss, window_steps = window_loss + loss, window_steps + 1
                if self.step % o.log_every == 0 or self.step == o.max_steps:
                    # every rank reaches this line at the same step: average over ranks
                    (window_loss,) = all_sum([window_loss / self.place.world_size], *self._on)
                    now = time.perf_counter()
                    self.log(
                        {
                            "step": self.step,
                            "split": "train",
                            "loss": window_loss / window_steps,
                            "lr": self.optimizer.param_groups[0]["lr"],
                            "tokens_per_s": tokens * window_steps / max(now - t_log, 1e-9),
                            "tokens_seen": self.tokens_seen,
                        }
                    )
                    window_loss, window_steps, t_log = 0.0, 0, now
                if o.eval_every and self.step % o.eval_every == 0:
                    stopped_early = self.evaluate_and_keep_best()
                if (o.save_every and self.step % o.save_every == 0) or stopped_early:
                    self.save()
                    saved_at = self.step
                if stopped_early:
                    break
                if stop.requested:
                    raise KeyboardInterrupt
            if not stopped_early and (not o.eval_every or self.step % o.eval_every):
                self.evaluate_and_keep_best()
            if saved_at != self.step:  # same answer on every rank (save() has a barrier)
                self.save()
        except KeyboardInterrupt:
            if not self.place.enabled and self.step > saved_at:
                self.save()  # keep the work done; --resume continues from here
                if not o.quiet:
                    print(f"\nsaved step {self.step} in {self.run_dir}/last", file=sys.stderr)
            raise
        finally:
            signals.close()
            bar.close()
            if self.writer is not None:
                self.writer.close()
        return self.run_dir
