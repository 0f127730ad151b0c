"""Generation: from a primer to new music, for any model in `nn`.

Every caller (continue, generate, compare, the studio) goes through one loop, `run`:

    loaded = load_model("piano-transformer")               # loading.py
    primer = read_primer(loaded.tokenizer, path, file_time=True)   # primers.py
    for take in run(loaded, [Job(primer, Path("a.mid"))] * 4, SamplingSettings(seed=1)):
        write_piece(loaded, take, model_name="piano-transformer")  # sidecars.py

`run(loaded, jobs, settings, batch_size, progress, should_stop=..., skip=...)` yields one
`Take` (index, job, settings with its seed, sampler result, batch rows) per job as its batch
finishes; `should_stop()` ends it between decoding steps.

settings.py      SamplingSettings — how to sample and how much, checked once
filters.py       top-k / top-p: pure functions on logits
picker.py        TokenPicker — one token per row from logits, one random stream per row
sampler.py       generate() — the KV-cached decoding loop; returns what each row did
primers.py       MIDI primers → token primers (find, read, crop)
outputs.py       output names, and no overwrite without force
runner.py        run — the one generation loop: settings per model, seeds, batches, cancel
sidecars.py      the one writer: a piece's MIDI + the JSON sidecar saying how it was made
progress.py      the progress bar of every generation command
loading.py       the default model, loaded where the runtime says; the sampler for it
continuation.py  continue_midi — `music-transformer continue`
batch.py         generate_pieces — `music-transformer generate` (batch generation)
"""

from .loading import DEFAULT_MODEL, load_model
from .primers import Primer, PrimerError, find_primers, read_primer
from .runner import DEFAULT_BATCH_SIZE, Job, Take, plan, run
from .settings import SamplingSettings
from .sidecars import Output, write_piece

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MODEL",
    "Job",
    "Output",
    "Primer",
    "PrimerError",
    "SamplingSettings",
    "Take",
    "find_primers",
    "load_model",
    "plan",
    "read_primer",
    "run",
    "write_piece",
]
