"""Let llama-cpp-py-sync's prebuilt llama.cpp libraries load on glibc older than 2.38 (Debian 12: 2.36).

The manylinux wheel is built on a newer glibc than its tag says: each library
needs glibc 2.38 for four functions only, the C23 variants of strtol,
strtoul, strtoull and sscanf, which differ from the classic ones in parsing
"0b" binary literals, which llama.cpp does not read. This rebinds those four
imports to the classic functions (GLIBC_2.2.5) and marks the 2.38 requirement
weak, editing the ELF files in place. Run by `make setup`; it does nothing
where the libraries already load, and refuses any other missing symbol.

Usage: python tools/llama_glibc_compat.py
"""

from __future__ import annotations

import importlib.util
import os
import struct
import sys
from pathlib import Path

CLASSIC = {
    b"__isoc23_strtol": b"strtol",
    b"__isoc23_strtoul": b"strtoul",
    b"__isoc23_strtoull": b"strtoull",
    b"__isoc23_sscanf": b"sscanf",
}
NEWER = b"GLIBC_2.38"
OLDER = b"GLIBC_2.2.5"
VER_FLG_WEAK = 0x2


def _cstr(data: bytes | bytearray, offset: int) -> bytes:
    return bytes(data[offset : data.index(b"\0", offset)])


def patch(path: Path) -> bool:
    """Rebind the C23 imports of one ELF64 little-endian library; False when it needs none."""
    data = bytearray(path.read_bytes())
    shoff, shentsize, shnum = struct.unpack_from("<Q", data, 0x28)[0], *struct.unpack_from("<HH", data, 0x3A)
    sections = {}
    for i in range(shnum):
        _, kind, _, _, offset, size, link, _, _, entsize = struct.unpack_from(
            "<IIQQQQIIQQ", data, shoff + i * shentsize
        )
        sections[kind] = (offset, size, link, entsize)
    dynsym, versym, verneed = sections[11], sections[0x6FFFFFFF], sections[0x6FFFFFFE]
    strtab = struct.unpack_from("<Q", data, shoff + dynsym[2] * shentsize + 0x18)[0]
    indices: dict[bytes, tuple[int, int]] = {}
    entry = verneed[0]
    while True:
        _, count, _, aux, following = struct.unpack_from("<HHIII", data, entry)
        if _cstr(data, strtab + struct.unpack_from("<I", data, entry + 4)[0]) == b"libc.so.6":
            at = entry + aux
            for _ in range(count):
                _, flags, other, name, step = struct.unpack_from("<IHHII", data, at)
                indices[_cstr(data, strtab + name)] = (other, at)
                at += step
        if not following:
            break
        entry += following
    if NEWER not in indices:
        return False
    newer, newer_at = indices[NEWER]
    older = indices[OLDER][0]
    rebound = 0
    for i in range(dynsym[1] // dynsym[3]):
        if struct.unpack_from("<H", data, versym[0] + 2 * i)[0] & 0x7FFF != newer:
            continue
        name_at = strtab + struct.unpack_from("<I", data, dynsym[0] + i * dynsym[3])[0]
        name = _cstr(data, name_at)
        if name not in CLASSIC:
            raise SystemExit(f"{path.name} needs {name.decode()} from glibc 2.38, which has no older twin")
        data[name_at : name_at + len(CLASSIC[name]) + 1] = CLASSIC[name] + b"\0"
        struct.pack_into("<H", data, versym[0] + 2 * i, older)
        rebound += 1
    if not rebound:
        return False
    flags = struct.unpack_from("<H", data, newer_at + 4)[0]
    struct.pack_into("<H", data, newer_at + 4, flags | VER_FLG_WEAK)
    path.write_bytes(bytes(data))
    return True


def main() -> None:
    version = os.confstr("CS_GNU_LIBC_VERSION") or ""
    if not version.startswith("glibc ") or tuple(map(int, version.split()[1].split(".")[:2])) >= (2, 38):
        return
    spec = importlib.util.find_spec("llama_cpp_py_sync")
    if spec is None or not spec.submodule_search_locations:
        return
    folder = Path(list(spec.submodule_search_locations)[0])
    patched = [lib.name for lib in sorted(folder.glob("lib*.so*")) if not lib.is_symlink() and patch(lib)]
    if patched:
        print(f"llama-cpp-py-sync: rebound glibc 2.38 imports in {', '.join(patched)}", file=sys.stderr)


if __name__ == "__main__":
    main()
