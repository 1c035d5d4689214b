#!/usr/bin/env python3
"""Prints one SHA-256 over the tensors of a safetensors file (names and bytes, in name order), ignoring its
metadata, which names the run directory and the position: two runs reached the same weights when their
digests agree. Used by the trainer's shell tests."""
import hashlib
import json
import struct
import sys

with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
header.pop("__metadata__", None)
h = hashlib.sha256()
for name in sorted(header):
    a, b = header[name]["data_offsets"]
    h.update(name.encode())
    h.update(data[a:b])
print(h.hexdigest())
