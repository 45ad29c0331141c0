"""Candidate checks, vectorised over all of a batch's candidates at once (no loop per document): the Luhn
digit of a card number, the ISO 13616 mod-97 check of an IBAN, the octets of an IPv4 address and the digit
count of a phone number. Each takes the candidates (a string array) and returns a bool numpy array."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _chars(values: pa.Array, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(ASCII codes right-aligned in an n x width matrix, 0-padded on the left; lengths) of short ASCII strings."""
    values = values.cast(pa.large_binary())
    lengths = pc.binary_length(values).to_numpy(zero_copy_only=False).astype(np.int64)
    n = len(values)
    out = np.zeros((n, width), np.uint8)
    if not n:
        return out, lengths
    data = np.frombuffer(values.buffers()[2], np.uint8) if values.buffers()[2] else np.zeros(1, np.uint8)
    starts = np.frombuffer(values.buffers()[1], np.int64, count=n + 1, offset=values.offset * 8)[:-1]
    keep = np.minimum(lengths, width)
    rows = np.repeat(np.arange(n), keep)
    within = np.arange(keep.sum()) - np.repeat(np.cumsum(keep) - keep, keep)  # 0.. keep-1 per row
    out[rows, width - keep[rows] + within] = data[np.repeat(starts + lengths - keep, keep) + within]
    return out, lengths


def _strip(values: pa.Array, junk: str) -> pa.Array:
    return pc.replace_substring_regex(values, junk, "")


def luhn(digits: pa.Array) -> np.ndarray:
    """True where a string of ASCII digits (at most 19) passes the Luhn check."""
    m, _ = _chars(digits, 19)
    d = np.where(m > 0, m.astype(np.int64) - 48, 0)
    doubled = d[:, -2::-2] * 2  # every second digit from the right, the check digit excluded
    total = d[:, -1::-2].sum(axis=1) + (doubled - 9 * (doubled > 9)).sum(axis=1)
    return total % 10 == 0


# (first two digits, lengths) of the major networks' numbers: Visa, Mastercard (51-55, 22-27), American Express,
# Diners Club, JCB, Discover / UnionPay / RuPay (60, 62, 64, 65).
_NETWORKS = ([(40 + i, (13, 16, 19)) for i in range(10)] + [(p, (16,)) for p in (*range(51, 56), *range(22, 28))]
             + [(34, (15,)), (37, (15,)), (30, (14, 16)), (36, (14, 16)), (38, (14, 16))]
             + [(p, (16, 17, 18, 19)) for p in (35, 60, 62, 64, 65)])
_LENGTHS = np.zeros((100, 20), bool)
for _prefix, _lengths in _NETWORKS:
    _LENGTHS[_prefix, list(_lengths)] = True


def card(candidates: pa.Array) -> np.ndarray:
    """A major network's first digits and length (spaces and hyphens removed) and a valid Luhn digit."""
    digits = _strip(candidates, "[^0-9]")
    n = np.minimum(pc.binary_length(digits).to_numpy(zero_copy_only=False), 19)
    first = pc.cast(pc.utf8_slice_codeunits(digits, 0, 2), pa.int64()).to_numpy(zero_copy_only=False)
    return _LENGTHS[first, n] & luhn(digits)


def iban(candidates: pa.Array) -> np.ndarray:
    """15 to 34 characters (spaces removed) whose ISO 13616 check holds: the first four characters moved to the
    end and letters read as 10 to 35, the number is 1 modulo 97."""
    compact = _strip(candidates, " ")
    n = pc.binary_length(compact).to_numpy(zero_copy_only=False)
    rotated = pc.binary_join_element_wise(pc.utf8_slice_codeunits(compact, 4), pc.utf8_slice_codeunits(compact, 0, 4),
                                          pa.scalar("", compact.type))
    m, _ = _chars(rotated, 34)
    rest = np.zeros(len(m), np.int64)
    for j in range(m.shape[1]):  # a loop over the 34 positions, each one step for every candidate
        c = m[:, j].astype(np.int64)
        letter = c >= 65
        value = np.where(letter, c - 55, c - 48)
        rest = np.where(c == 0, rest, np.where(letter, rest * 100 + value, rest * 10 + value) % 97)
    return (n >= 15) & (n <= 34) & (rest == 1)


def ipv4(candidates: pa.Array) -> np.ndarray:
    """Exactly four parts, each 0 to 255."""
    parts = pc.split_pattern(candidates, ".")
    count = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    flat = parts.flatten()
    big = (pc.binary_length(flat).to_numpy(zero_copy_only=False) > 3)
    small = pc.cast(pc.if_else(pa.array(big), "999", flat), pa.int64()).to_numpy(zero_copy_only=False) > 255
    bad = np.bincount(pc.list_parent_indices(parts).to_numpy(zero_copy_only=False), weights=big | small,
                      minlength=len(candidates))
    return (count == 4) & (bad == 0)


def phone(candidates: pa.Array) -> np.ndarray:
    """9 to 15 digits (E.164's longest), so that short numbers and dates with spaces are not phone numbers, and
    no digit group or IBAN head before a national number's trunk 0 (the tail of a longer run is no phone number)."""
    n = pc.binary_length(_strip(candidates, "[^0-9]")).to_numpy(zero_copy_only=False)
    run = pc.match_substring_regex(candidates, "^(?:[1-9][0-9]* |[A-Z])").to_numpy(zero_copy_only=False)
    return (n >= 9) & (n <= 15) & ~run
