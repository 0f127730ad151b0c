"""Generation: from a primer to new music, for any model in `nn`.

settings.py      SamplingSettings — how to sample and how much, checked once
filters.py       top-k / top-p: pure functions on logits
picker.py        TokenPicker — one token per row from logits, one random stream per row
sampler.py       generate() — the KV-cached decoding loop; returns what each row did
primers.py       MIDI primers → token primers (find, read, crop)
outputs.py       output names, and no overwrite without force
sidecars.py      writing a piece: MIDI + the JSON sidecar saying how it was made
loading.py       the default model, loaded where the runtime says; the sampler for it
continuation.py  continue_midi — `music-transformer continue`
batch.py         generate_pieces — `music-transformer generate` (batch generation)
"""
