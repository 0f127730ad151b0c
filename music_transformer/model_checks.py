"""Checks on a model directory before anything is built from it: a config.json may ask for
any size, and a model.safetensors may be truncated or hold other shapes.

    check_fits(shapes)            the weights fit in the memory this machine has
    check_weights(path, config)   the safetensors header names exactly the config's tensors,
                                  with their shapes, and the file holds all their bytes

Both read no tensor data and allocate nothing of the model's size.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import torch

from .nn.build import build_model
from .nn.config import AnyConfig

# The weights are loaded in fp32 (and a bf16 copy may be made for autocast): refuse a model
# whose fp32 weights alone take more than this share of the memory available.
MEMORY_SHARE = 0.5
HEADER_LIMIT = 100 << 20  # a safetensors header longer than this is not a header
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
                "I8": 1, "U8": 1, "BOOL": 1}  # fmt: skip


class ModelCheckError(ValueError):
    """A model directory that must not be loaded. The message is one line."""


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable), or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _tensors(config: AnyConfig) -> list[tuple[list[str], tuple[int, ...]]]:
    """(names, shape) of each distinct tensor; tied weights have several names."""
    with torch.device("meta"):
        model = build_model(config)
    groups: dict[int, list[str]] = {}
    shapes: dict[int, tuple[int, ...]] = {}
    tensors = [*model.named_parameters(remove_duplicate=False), *model.named_buffers()]
    for name, tensor in tensors:
        groups.setdefault(id(tensor), []).append(name)
        shapes[id(tensor)] = tuple(tensor.shape)
    return [(groups[k], shapes[k]) for k in groups]


def check_fits(shapes: dict[str, tuple[int, ...]]) -> int:
    """Raise ModelCheckError when fp32 weights of these shapes would not fit; return their
    bytes."""
    need = 4 * sum(math.prod(s) for s in shapes.values())
    have = available_memory()
    if have is not None and need > MEMORY_SHARE * have:
        raise ModelCheckError(
            f"its config asks for a model of {need / 2**30:.1f} GiB of weights, and this "
            f"machine has {have / 2**30:.1f} GiB of memory available"
        )
    return need


def read_header(path: Path) -> dict[str, dict]:
    """The tensor table of a safetensors file, checked against the file's size."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise ModelCheckError(f"{path} is truncated (no header)")
            (length,) = struct.unpack("<Q", raw)
            if length > min(HEADER_LIMIT, size - 8):
                raise ModelCheckError(f"{path} is truncated or not safetensors (header length)")
            header = json.loads(f.read(length))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelCheckError(f"{path} is not a readable safetensors file ({e})") from None
    if not isinstance(header, dict):
        raise ModelCheckError(f"{path} is not a safetensors file")
    header.pop("__metadata__", None)
    end = 0
    for name, entry in header.items():
        try:
            start, stop = entry["data_offsets"]
            nbytes = _DTYPE_BYTES[entry["dtype"]] * math.prod(entry["shape"])
        except (KeyError, TypeError, ValueError):
            raise ModelCheckError(f"{path}: tensor {name!r} is not described properly") from None
        if stop - start != nbytes:
            raise ModelCheckError(f"{path}: tensor {name!r} does not hold its own shape's bytes")
        end = max(end, stop)
    if 8 + length + end != size:
        raise ModelCheckError(
            f"{path} is truncated or padded: {size:,} bytes, its header describes "
            f"{8 + length + end:,}"
        )
    return header


def check_weights(path: Path, config: AnyConfig) -> None:
    """The file holds exactly the config's tensors, each with its shape (and all its bytes)."""
    tensors = _tensors(config)
    check_fits({names[0]: shape for names, shape in tensors})
    header = read_header(path)
    known = {name for names, _ in tensors for name in names}
    extra = sorted(set(header) - known)
    if extra:
        raise ModelCheckError(f"{path} does not match its config.json: unknown tensor {extra[0]!r}")
    for names, shape in tensors:
        present = [n for n in names if n in header]
        if not present:
            raise ModelCheckError(f"{path} does not match its config.json: it lacks {names[0]!r}")
        for name in present:
            if tuple(header[name]["shape"]) != shape:
                raise ModelCheckError(
                    f"{path} does not match its config.json: {name} has shape "
                    f"{tuple(header[name]['shape'])}, the config makes {shape}"
                )
