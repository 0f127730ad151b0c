"""The common interface of every tokenizer preset, and tokenizer.json save/load.

A preset wraps one miditok tokenizer (its vocabulary and event encoder) and adds what the
model pipeline needs: a decoder that never raises, per-token durations, and augmentation on
token windows. Token ids are miditok's ids, so `miditok` names (`NoteOn_60`, `TimeShift_…`)
are what `token_names()` shows. A preset may also build its own vocabulary without miditok
(`tokenizer_class = None`, see `_set_vocab`), as the `jsb` grid preset does.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import miditok
import numpy as np
import pretty_midi
import symusic

from .errors import MidiReadError
from .files import atomic_write, atomic_write_json

FILE_FORMAT = "music-transformer/tokenizer"
FORMAT_VERSION = 1

MidiInput = str | Path | bytes | pretty_midi.PrettyMIDI | symusic.core.ScoreTick


@functools.cache  # the installed version does not change while we run (a metadata lookup)
def package_version() -> str:
    try:
        return metadata.version("music-transformer")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class Tokenizer:
    """MIDI ↔ token ids for one preset.

    Attributes:
        preset: the preset name ("performance", "score", ...).
        vocab_size: number of token ids; ids are 0 .. vocab_size - 1.
        pad_id, bos_id, eos_id: special tokens. `encode` never emits them; datasets put BOS and
            EOS around each piece and fill empty positions with PAD.
        token_seconds: (vocab_size,) float64, seconds of music each token advances (0 for
            tokens that do not move time).

    Augmentation (used by `WindowBatches` on training windows, as in the paper):
        transpose(ids, k): every pitch token moved by k semitones; None if a pitch would leave
            the vocabulary's pitch range.
        stretch(ids, f): time scaled by f (performance preset; other presets return ids).
    """

    preset: ClassVar[str] = ""
    # the miditok class wrapped; None for presets with their own vocabulary (e.g. `jsb`)
    tokenizer_class: ClassVar[type[miditok.MusicTokenizer] | None] = None
    # token-name prefixes that carry a pitch (NoteOn/NoteOff, Pitch, ...)
    pitch_prefixes: ClassVar[tuple[str, ...]] = ()
    stretches: ClassVar[bool] = False  # whether `stretch` changes anything
    # Tokens per time step in presets with a fixed frame (jsb: S A T B per 16th). Training
    # windows then start at a step boundary, so a token's role follows from its position.
    frame: ClassVar[int] = 1
    # Tokens between the places a training window may start (a multiple of `frame`; jsb: 16,
    # one quarter-note beat of four steps): a token's position then tells its beat phase too.
    grain: ClassVar[int] = 1

    def __init__(self, config: miditok.TokenizerConfig) -> None:
        self.miditok = self.tokenizer_class(config)
        names = [""] * len(self.miditok.vocab)
        for name, i in self.miditok.vocab.items():
            names[i] = name
        self._set_vocab(names)

    def _set_vocab(self, names: list[str]) -> None:
        """Set the vocabulary (names in id order, miditok style `Prefix_value`, with PAD_None,
        BOS_None and EOS_None) and the tables derived from it. A preset that does not wrap a
        miditok tokenizer (`tokenizer_class = None`) calls this instead of `__init__`."""
        self.vocab: list[str] = list(names)
        vocab = {name: i for i, name in enumerate(self.vocab)}
        self.vocab_size = len(self.vocab)
        self.pad_id, self.bos_id, self.eos_id = (vocab[f"{s}_None"] for s in ("PAD", "BOS", "EOS"))
        self.prefix = [name.split("_", 1)[0] for name in self.vocab]
        self.value = [name.split("_", 1)[1] if "_" in name else "" for name in self.vocab]
        self._build_pitch_tables()
        self.token_seconds = self._token_seconds()

    # ----- to be provided by each preset -------------------------------------------------
    def encode(self, midi: MidiInput) -> list[int]:
        """Event token ids of a MIDI file or object, without BOS/EOS.

        Raises:
            MidiReadError: unreadable input, or no notes left after the preset's filtering.
        """
        raise NotImplementedError

    def decode(self, ids: Sequence[int] | np.ndarray) -> pretty_midi.PrettyMIDI:
        """A PrettyMIDI object from any id sequence; never raises. Special and out-of-range
        ids are ignored, impossible successions skipped, notes still open at the end closed."""
        raise NotImplementedError

    def _token_seconds(self) -> np.ndarray:
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """Constructor keyword arguments that rebuild this tokenizer (saved in tokenizer.json)."""
        return {}

    # ----- shared ------------------------------------------------------------------------
    def _kind_table(
        self,
        kinds: Sequence[int],
        int_kinds: tuple[int, ...],
        tick_kinds: tuple[int, ...],
        tpb: int,
    ) -> None:
        """`self.kind` (one kind per token id) and `self.arg`: the token's integer value for
        `int_kinds` (pitch, velocity, position), its miditok "beats.pos.res" value in ticks of a
        `tpb`-per-beat grid for `tick_kinds` (time shifts, durations), 0 otherwise."""
        self.kind = np.asarray(kinds, dtype=np.int64)
        self.arg = np.zeros(self.vocab_size, dtype=np.int64)
        for i, (k, v) in enumerate(zip(self.kind, self.value)):
            if k in int_kinds:
                self.arg[i] = int(v)
            elif k in tick_kinds:
                self.arg[i] = miditok_ticks(v, tpb)
        self._kind_list, self._arg_list = self.kind.tolist(), self.arg.tolist()

    def _encode_score(self, score: Any) -> list[int]:
        """miditok's ids of a one-track symusic score (miditok returns a list of sequences for
        some configurations and one sequence for others)."""
        seq = self.miditok.encode(score)
        seq = seq[0] if isinstance(seq, list) else seq
        return list(seq.ids)

    def write_midi(
        self, ids: Sequence[int] | np.ndarray, path: str | Path, exclusive: bool = False
    ) -> None:
        """Decode `ids` and write the MIDI file atomically."""
        pm = self.decode(ids)
        atomic_write(path, lambda p: pm.write(str(p)), exclusive)

    def seconds(self, ids: Sequence[int] | np.ndarray) -> float:
        """Seconds of music `ids` span (sum of `token_seconds`; invalid ids count 0)."""
        arr = as_ids(ids)
        arr = arr[(arr >= 0) & (arr < self.vocab_size)]
        return float(self.token_seconds[arr].sum())

    def note_seconds(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """(N,) seconds each decoded note of `ids` lasts, in decoding order."""
        pm = self.decode(ids)
        return np.array([n.end - n.start for i in pm.instruments for n in i.notes], np.float64)

    def token_names(self, ids: Sequence[int] | np.ndarray | None = None) -> list[str]:
        """Names of `ids` (all names in id order when None), e.g. for debugging samples."""
        if ids is None:
            return list(self.vocab)
        names = self.vocab
        return [names[i] if 0 <= i < self.vocab_size else f"<{i}?>" for i in as_ids(ids).tolist()]

    def _build_pitch_tables(self) -> None:
        kinds = {p: k for k, p in enumerate(self.pitch_prefixes)}
        self._pitch_kind = np.full(self.vocab_size, -1, dtype=np.int64)  # (V,)
        self._pitch = np.zeros(self.vocab_size, dtype=np.int64)  # (V,)
        self._pitch_token = np.full((max(len(kinds), 1), 128), -1, dtype=np.int64)  # (K, 128)
        for i, (prefix, value) in enumerate(zip(self.prefix, self.value)):
            if prefix in kinds:
                k, p = kinds[prefix], int(value)
                self._pitch_kind[i], self._pitch[i] = k, p
                self._pitch_token[k, p] = i

    def transpose(self, ids: np.ndarray, semitones: int) -> np.ndarray | None:
        """`ids` with every pitch token moved by `semitones`; None if one would fall outside
        the pitch range. `ids`: (T,) integer array; returns a new (T,) array of its dtype."""
        ids = np.asarray(ids)
        if semitones == 0:
            return ids.copy()
        safe = np.clip(ids.astype(np.int64), 0, self.vocab_size - 1)  # PAD etc. stay as they are
        kind = self._pitch_kind[safe]
        is_pitch = (kind >= 0) & (ids >= 0) & (ids < self.vocab_size)
        if not is_pitch.any():
            return ids.copy()
        moved = self._pitch[safe[is_pitch]] + semitones
        if moved.min() < 0 or moved.max() > 127:
            return None
        new_ids = self._pitch_token[kind[is_pitch], moved]
        if (new_ids < 0).any():
            return None
        out = ids.copy()
        out[is_pitch] = new_ids
        return out

    def pitch_range(self, ids: np.ndarray) -> tuple[int, int] | None:
        """(lowest, highest) pitch of the pitch tokens in `ids`, or None if there are none."""
        ids = np.asarray(ids, dtype=np.int64)
        ids = ids[(ids >= 0) & (ids < self.vocab_size)]
        mask = self._pitch_kind[ids] >= 0
        if not mask.any():
            return None
        pitches = self._pitch[ids[mask]]
        return int(pitches.min()), int(pitches.max())

    def transpositions(self, ids: np.ndarray, max_shift: int = 3) -> list[int]:
        """The shifts in −max_shift..max_shift that keep every pitch of `ids` in range."""
        span = self.pitch_range(ids)
        if span is None:
            return [0]
        lo, hi = self.pitch_limits()
        return [
            k for k in range(-max_shift, max_shift + 1) if lo <= span[0] + k and span[1] + k <= hi
        ]

    def pitch_limits(self) -> tuple[int, int]:
        """Lowest and highest pitch the vocabulary can express."""
        have = np.nonzero((self._pitch_token >= 0).all(axis=0))[0]
        return int(have.min()), int(have.max())

    def stretch(self, ids: np.ndarray, factor: float) -> np.ndarray:
        """Time scaled by `factor`. Presets without absolute time shifts return `ids`."""
        return np.asarray(ids)

    def save(self, path: str | Path) -> None:
        """Write tokenizer.json (atomically): preset, options, vocabulary and versions."""
        atomic_write_json(path, self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format": FILE_FORMAT,
            "format_version": FORMAT_VERSION,
            "preset": self.preset,
            "options": self.options(),
        }
        if self.tokenizer_class is None:  # a preset with its own vocabulary (e.g. `jsb`)
            d["tokenizer_class"] = f"{type(self).__module__}.{type(self).__name__}"
            d["package_version"] = package_version()
        else:
            d["tokenizer_class"] = f"miditok.{self.tokenizer_class.__name__}"
            d["miditok_version"] = metadata.version("miditok")
            d["package_version"] = package_version()
            d["miditok_config"] = self.miditok.config.to_dict(serialize=True)
        d["vocab"] = self.vocab
        return d

    def __repr__(self) -> str:
        return f"{type(self).__name__}(preset={self.preset!r}, vocab_size={self.vocab_size})"


def as_ids(ids: object) -> np.ndarray:
    """(T,) int64 array from a list, a numpy array or a torch tensor (on any device)."""
    if hasattr(ids, "detach"):  # a torch tensor, maybe on a GPU
        ids = ids.detach().cpu().numpy()
    return np.asarray(ids, dtype=np.int64).reshape(-1)  # (T,)


def miditok_config(beat_res: dict[tuple[int, int], int], **extra: Any) -> miditok.TokenizerConfig:
    """The miditok settings every miditok-based preset shares: full pitch range 0..127, 32
    velocities, PAD/BOS/EOS, and no tempo, time-signature, program, pedal, drum or rest tokens
    (time is absolute seconds, instruments are merged, the pedal is folded into durations)."""
    shared: dict[str, Any] = {"pitch_range": (0, 127), "num_velocities": 32}
    shared["special_tokens"] = ["PAD", "BOS", "EOS"]
    shared["use_velocities"] = True
    for off in ("tempos", "time_signatures", "programs", "sustain_pedals", "pitchdrum_tokens"):
        shared[f"use_{off}"] = False
    shared["use_rests"] = False
    return miditok.TokenizerConfig(beat_res=beat_res, **shared, **extra)


def miditok_ticks(value: str, ticks_per_beat: int) -> int:
    """Ticks of a miditok duration/time-shift value "beats.pos.res" on a `ticks_per_beat` grid."""
    beats, pos, res = (int(x) for x in value.split("."))
    return beats * ticks_per_beat + pos * ticks_per_beat // res


def no_notes_error(name: str, what: str) -> MidiReadError:
    return MidiReadError(f"{name}: no notes to tokenize ({what})")


def read_tokenizer_json(path: str | Path) -> dict[str, Any]:
    """The parsed tokenizer.json, checked for the fields `load_tokenizer` needs."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"cannot read tokenizer file {path}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"tokenizer file {path} is not valid JSON ({e.msg})") from None
    if not isinstance(meta, dict) or meta.get("format") != FILE_FORMAT:
        raise ValueError(f"{path} is not a music-transformer tokenizer file")
    if "preset" not in meta or not isinstance(meta.get("vocab"), list):
        raise ValueError(f"tokenizer file {path} lacks 'preset' or 'vocab'")
    return meta
