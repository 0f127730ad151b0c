"""music-transformer: the Music Transformer (Huang et al., ICLR 2019) and its RNN baseline.

Layers, lowest first; a module imports only from layers below its own (tests/test_layers.py):

    nn/  runtime      the network (attention, cache, models, configs) · device, precision and
                      thread policy for training, sampling and evaluation alike · allocator:
                      freed buffers kept warm (glibc)
    model_checks      a model directory checked before it is built (memory, shapes, size)
    checkpoint        model directories: config.json · model.safetensors · tokenizer.json
    generation/       sampling settings, the KV-cached sampler, primers, outputs, sidecars
    evaluation/       NLL over evaluation windows (shared with training's validation)
    longform/         the long-form judge: 30-s segments against a real corpus's bands (never
                      imported by generation/, and importing nothing of it)
    catalog           which models there are and what each holds (`models`, `info`)
    training/         options, the trainer (single process or DDP), run directories
    comparison/       listening reports: audio, piano rolls, blind A/B page, metrics

MIDI ↔ tokens, corpora, datasets and audio rendering live in the sibling package `midi_data`;
the command line in `cli`.
"""
