"""Build a SentencePiece ``precompiled_charsmap`` from a per-codepoint normalization table.

``tokenizers.normalizers.Precompiled`` is the only normalizer that applies thousands of
character rules in one native pass (a ``Sequence`` of ~4,800 ``Replace`` rules is correct too,
but costs about 2 ms per sentence). Its input is SentencePiece's binary charsmap:

    u32 LE  trie size in bytes
    u32 LE  darts-clone double-array units (the trie over the UTF-8 bytes of each key)
    bytes   the replacements, each NUL-terminated; a key's leaf value is its offset here

Unit layout (as read by the ``spm_precompiled`` crate that ``tokenizers`` uses):
    label    = unit & 0x800000FF       (bit 31 set marks a value unit: it never matches a label)
    has_leaf = (unit >> 8) & 1
    offset   = (unit >> 10) << ((unit & 0x200) >> 6)
    value    = unit & 0x7FFFFFFF
A lookup starts at unit 0: pos ^= offset(unit); then per byte c: pos ^= c, the unit there must
carry label c, pos ^= its offset, and if it has a leaf, the value unit sits at pos (slot "c=0").
"""

from __future__ import annotations

import struct

_LEAF_FLAG = 1 << 8
_VALUE_FLAG = 1 << 31
_MAX_OFFSET = 1 << 21  # offsets below this fit the unit directly (no "extended" encoding needed)


def build_precompiled_charsmap(rules: dict[int, str]) -> bytes:
    """Charsmap for ``rules`` (codepoint -> replacement, possibly empty = delete)."""
    blob, value_of = bytearray(), {}
    for replacement in sorted(set(rules.values())):
        value_of[replacement] = len(blob)
        blob += replacement.encode("utf-8") + b"\0"
    keys = {chr(cp).encode("utf-8"): value_of[out] for cp, out in rules.items()}
    units = _double_array(keys)
    return struct.pack("<I", 4 * len(units)) + struct.pack(f"<{len(units)}I", *units) + bytes(blob)


def _byte_trie(keys: dict[bytes, int]) -> list[tuple[dict[int, int], int | None]]:
    """Nodes as (children label -> node index, leaf value or None); node 0 is the root."""
    nodes: list[tuple[dict[int, int], int | None]] = [({}, None)]
    for key, value in keys.items():
        node = 0
        for byte in key:
            children = nodes[node][0]
            if byte not in children:
                children[byte] = len(nodes)
                nodes.append(({}, None))
            node = children[byte]
        nodes[node] = (nodes[node][0], value)
    return nodes


def _double_array(keys: dict[bytes, int]) -> list[int]:
    """Pack the byte trie of ``keys`` into darts-clone units (breadth-first, first fit)."""
    nodes = _byte_trie(keys)
    units: list[int] = [0]
    slots = _FreeSlots()
    slots.take(0)                 # the root's unit
    used_bases: set[int] = set()  # two nodes sharing a base could read each other's children
    queue = [(0, 0, 0)]           # (node, slot, label)
    for node, slot, label in queue:
        children, value = nodes[node]
        # Slot "label 0" under a node holds its leaf value; real bytes are never 0 in UTF-8 keys.
        labels = sorted(children) if value is None else [0, *sorted(children)]
        base = _find_base(labels, slots, used_bases)
        used_bases.add(base)
        for lab in labels:
            slots.take(base ^ lab)
        units.extend([0] * (slots.size - len(units)))
        offset = slot ^ base
        if offset >= _MAX_OFFSET:
            raise ValueError("normalization table too large for the simple double-array layout")
        units[slot] = label | (_LEAF_FLAG if value is not None else 0) | (offset << 10)
        if value is not None:
            units[base] = _VALUE_FLAG | value
        for lab, child in sorted(children.items()):
            queue.append((child, base ^ lab, lab))
    return units


class _FreeSlots:
    """Which array slots are taken; ``next_free`` skips taken runs in near-constant time."""

    def __init__(self) -> None:
        self._next: list[int] = []  # union-find: points at a slot >= itself that may be free
        self.size = 0               # one past the highest taken slot

    def is_free(self, pos: int) -> bool:
        return pos >= len(self._next) or self._next[pos] == pos

    def take(self, pos: int) -> None:
        if pos >= len(self._next):
            self._next.extend(range(len(self._next), pos + 257))
        self._next[pos] = pos + 1
        self.size = max(self.size, pos + 1)

    def next_free(self, pos: int) -> int:
        root = pos
        while root < len(self._next) and self._next[root] != root:
            root = self._next[root]
        while pos < len(self._next) and self._next[pos] != pos:  # path compression
            self._next[pos], pos = root, self._next[pos]
        return root


def _find_base(labels: list[int], slots: _FreeSlots, used_bases: set[int]) -> int:
    """Smallest base whose slots ``base ^ label`` are all free (slot 0 is the root's)."""
    pos = slots.next_free(1)
    while True:
        base = pos ^ labels[0]
        if base not in used_bases and all(slots.is_free(base ^ lab) for lab in labels[1:]):
            return base
        pos = slots.next_free(pos + 1)
