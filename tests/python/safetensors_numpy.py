#!/usr/bin/python3
"""A tiny safetensors reader and writer in NumPy, to check seqgrad's files against an
implementation that shares no code with it (the safetensors pip package is not available).

  safetensors_numpy.py check IN.safetensors   read a file seqgrad wrote, checking the layout
                                              strictly; print its contents as JSON
  safetensors_numpy.py write OUT.safetensors  write a file of known tensors; print them as JSON

The JSON on stdout is {"metadata": {...}, "tensors": [{"name", "dtype", "shape", "values"}]}
with NumPy dtype names and values flattened in row-major order; tests/test_safetensors.cpp
compares it with what seqgrad saved or loaded. Any problem exits non-zero with a message on
stderr. Needs only numpy, json and struct; run it with Debian's /usr/bin/python3.
"""
import json
import struct
import sys

import numpy as np

# safetensors dtype name -> NumPy dtype, explicitly little-endian as the format requires.
DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8"), "BOOL": np.dtype("?")}
NAMES = {v: k for k, v in DTYPES.items()}


def fail(msg):
    sys.stderr.write(f"safetensors_numpy.py: {msg}\n")
    sys.exit(1)


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        fail(f"duplicate keys in the header: {keys}")
    return dict(pairs)


def describe(metadata, tensors):
    """The JSON printed for the C++ test; `tensors` is a list of (name, array)."""
    return {
        "metadata": metadata,
        "tensors": [
            {"name": name, "dtype": str(a.dtype), "shape": list(a.shape), "values": a.ravel().tolist()}
            for name, a in tensors
        ],
    }


def read(path):
    """Returns (metadata, [(name, array)] in data order), failing on any layout problem."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        fail(f"{path}: only {len(blob)} bytes")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        fail(f"{path}: header length {n} runs past the end of the file")
    # seqgrad pads its header with spaces so the data starts 8-byte aligned.
    if (8 + n) % 8 != 0:
        fail(f"{path}: data starts at byte {8 + n}, not a multiple of 8")
    header = json.loads(blob[8 : 8 + n].decode("utf-8"), object_pairs_hook=no_duplicates)
    if not isinstance(header, dict):
        fail(f"{path}: header is not an object")
    metadata = header.pop("__metadata__", {})
    if not all(isinstance(v, str) for v in metadata.values()):
        fail(f"{path}: metadata values must be strings: {metadata}")
    data = blob[8 + n :]
    entries = sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"]))
    cursor = 0
    tensors = []
    for name, e in entries:
        if set(e) != {"dtype", "shape", "data_offsets"}:
            fail(f"{path}: tensor {name!r} has keys {sorted(e)}")
        dtype = DTYPES[e["dtype"]]
        shape = tuple(e["shape"])
        begin, end = e["data_offsets"]
        if begin != cursor or end < begin or end > len(data):
            fail(f"{path}: tensor {name!r} has data_offsets {e['data_offsets']} at cursor {cursor}")
        if end - begin != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            fail(f"{path}: tensor {name!r}: {end - begin} bytes do not hold {dtype} {shape}")
        a = np.frombuffer(data[begin:end], dtype=dtype).reshape(shape)
        if dtype == np.dtype("?") and not np.all(np.frombuffer(data[begin:end], np.uint8) <= 1):
            fail(f"{path}: tensor {name!r} has bool bytes other than 0 and 1")
        tensors.append((name, a))
        cursor = end
    if cursor != len(data):
        fail(f"{path}: {len(data) - cursor} trailing bytes")
    return metadata, tensors


def write(path, metadata, tensors):
    """Writes like the reference implementation: header keys sorted, data in its own order."""
    header = {"__metadata__": metadata} if metadata else {}
    chunks = []
    offset = 0
    for name, a in tensors:
        raw = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": NAMES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(dict(sorted(header.items())), separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)


def known_tensors():
    """What `write` saves; the C++ test also checks a few of these values by hand."""
    weight = (np.arange(12, dtype="<f4").reshape(3, 4) / np.float32(4)).T  # Fortran-ordered view
    return [
        ("weight", weight),
        ("ids", np.array([-(2**63), 2**63 - 1, 0, 7], dtype="<i8")),
        ("mask", np.array([[True, False, True], [False, False, True]])),
        ("scale", np.array(0.1, dtype="<f8")),  # 0-d
        ("empty", np.zeros((2, 0), dtype="<f8")),
        ("tiny", np.array([1e-30, -3.4e38, -0.0], dtype="<f4")),
    ]


def main(argv):
    if len(argv) != 3 or argv[1] not in ("check", "write"):
        fail("usage: safetensors_numpy.py check IN.safetensors | write OUT.safetensors")
    mode, path = argv[1], argv[2]
    if mode == "check":
        metadata, tensors = read(path)
    else:
        metadata = {"format": "numpy", "note": "written by safetensors_numpy.py"}
        tensors = known_tensors()
        write(path, metadata, tensors)
        # Reading our own file back checks the writer against the strict reader above.
        again_metadata, again = read(path)
        if again_metadata != metadata or sorted(n for n, _ in again) != sorted(n for n, _ in tensors):
            fail(f"{path}: the file read back differs from what was written")
    json.dump(describe(metadata, tensors), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
