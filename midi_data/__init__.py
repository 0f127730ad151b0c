"""MIDI → tokens → training batches (and back): the data side of music-transformer.

tokenizer = make_tokenizer("performance")      # or load_tokenizer("tokenizer.json")
ids = tokenizer.encode("piece.mid")             # event tokens, no BOS/EOS
tokenizer.write_midi(ids, "copy.mid")
data = open_data("data/bach")                   # made by `music-transformer prepare`
batch = WindowBatches(data, seq_len=1024, batch_size=8)[step]   # (8, 1025) int64
"""

from .corpus import find_files, music21_files
from .dataset import TokenData, WindowBatches, eval_windows, open_data
from .errors import DataError, MidiReadError
from .midi_io import crop_seconds, read_midi
from .presets import PRESETS, load_tokenizer, make_tokenizer
from .shards import PrepareResult, prepare
from .tokenizer import Tokenizer

__all__ = [
    "PRESETS",
    "DataError",
    "MidiReadError",
    "PrepareResult",
    "TokenData",
    "Tokenizer",
    "WindowBatches",
    "crop_seconds",
    "eval_windows",
    "find_files",
    "load_tokenizer",
    "make_tokenizer",
    "music21_files",
    "open_data",
    "prepare",
    "read_midi",
]
