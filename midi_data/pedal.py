"""Sustain pedal back out of note lengths: the inverse of `notes.fold_sustain`.

The `performance` tokens fold the pedal into how long notes sound, so a model writes long notes
where a pianist would lift the keys and hold the pedal. `unfold_sustain` finds where that
happened — several notes, struck at different times, released at one instant (the folded pedal
lifts them together) — and writes it as the pianist would: a pedal held from shortly after the
first of those notes until that instant, their keys lifted early. It changes no sounding note:
every note still sounds from its onset to its end (the pedal holds it to the lift), and no note
that is not part of a release is caught by a pedal (its end lies outside every pedal span).
"""

from __future__ import annotations

import numpy as np
import pretty_midi

from .notes import Notes

RELEASE_TOLERANCE = 0.011  # seconds: ends this close are one release (one 10 ms token step)
MIN_RELEASED = 3  # notes that must end together to read a pedal lift there
KEY_SECONDS = 0.1  # how long an unfolded key is held (a short touch, then the pedal)
PEDAL_DELAY = 0.05  # seconds after the first onset of a release group the pedal goes down
KEY_AFTER_PEDAL = 0.02  # keys lift this long after the pedal is down (clear of tick rounding)


def unfold_sustain(notes: Notes) -> tuple[Notes, list[tuple[float, float]]]:
    """Notes (seconds) with pedal-held ends turned into key lifts + pedal spans.

    Returns:
        the notes with shortened ends where a pedal now holds them, and the pedal spans
        [(down, up), ...] in seconds, in order and disjoint.
    """
    if len(notes) == 0:
        return notes, []
    start, end = notes.start.astype(float), notes.end.astype(float).copy()
    order = np.argsort(end, kind="stable")
    groups, i = [], 0
    while i < len(order):  # runs of ends within the tolerance of each other
        j = i
        while j + 1 < len(order) and end[order[j + 1]] - end[order[i]] <= RELEASE_TOLERANCE:
            j += 1
        groups.append(order[i : j + 1])
        i = j + 1
    spans: list[tuple[float, float]] = []
    last_up = -np.inf
    for group in groups:
        up = float(end[group].min())
        if len(group) < MIN_RELEASED or len(np.unique(np.round(start[group], 2))) < 2:
            continue  # a chord simply let go, not a pedal lift
        down = max(float(start[group].min()) + PEDAL_DELAY, last_up)
        # no other note may end inside the span (or at its start, where tick rounding may
        # put it under the pedal): the pedal would hold it on
        inside = (end > down - KEY_AFTER_PEDAL) & (end < up - 1e-9)
        inside[group] = False
        if inside.any():
            down = float(end[inside].max()) + KEY_AFTER_PEDAL
        if up - down < 2 * PEDAL_DELAY:
            continue
        for n in group:  # keys lifted once the pedal is down (never before their onset)
            end[n] = min(end[n], max(start[n] + KEY_SECONDS, down + KEY_AFTER_PEDAL))
        spans.append((down, up))
        last_up = up
    return Notes(notes.start, end, notes.pitch, notes.velocity), spans


def sounding_ends(notes: Notes, spans: list[tuple[float, float]]) -> np.ndarray:
    """(N,) when each note stops sounding given the pedal spans (a key lifted inside a span
    sounds on until the span ends) — what a synthesizer plays."""
    ends = notes.end.astype(float).copy()
    for down, up in spans:
        held = (ends > down) & (ends < up)
        ends[held] = up
    return ends


def with_pedal(pm: pretty_midi.PrettyMIDI) -> pretty_midi.PrettyMIDI:
    """The same music with each instrument's pedal-held notes unfolded into CC64 presses."""
    for inst in pm.instruments:
        if inst.is_drum or not inst.notes:
            continue
        notes = Notes(*(np.array([getattr(n, f) for n in inst.notes]) for f in
                        ("start", "end", "pitch", "velocity")))  # fmt: skip
        keys, spans = unfold_sustain(notes)
        for n, end in zip(inst.notes, keys.end.tolist()):
            n.end = end
        for down, up in spans:
            inst.control_changes += [pretty_midi.ControlChange(64, 127, down),
                                     pretty_midi.ControlChange(64, 0, up)]  # fmt: skip
        inst.control_changes.sort(key=lambda c: c.time)
    return pm
