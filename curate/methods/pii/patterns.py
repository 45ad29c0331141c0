"""What the `pii` stage looks for: one RE2 pattern per kind (the syntax `pyarrow.compute` runs), the
placeholder that replaces a match, and the check a candidate must pass (`checks.py`).

The patterns are permissive where a check follows (a card is any 13 to 19 digits, then Luhn decides) and
strict where none does (an e-mail needs a dotted domain with a letter TLD). `KINDS` is also the order of
detection: each kind runs on the text the earlier kinds have redacted, so a span is counted once, under the
first kind that claims it (a JWT's digits are never a phone number, an IBAN's never a card).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from curate.methods.pii import checks


@dataclass(frozen=True)
class Kind:
    """One kind of personal data or secret: its RE2 pattern, placeholder and candidate check (None: none)."""

    name: str
    placeholder: str
    pattern: str
    check: Callable[[pa.Array], np.ndarray] | None = None


_HEX = "[0-9A-Fa-f]"
_SECRETS = "|".join([
    # PEM private key blocks, or the block's start and its base64 body when the END line is missing.
    r"-----BEGIN[A-Z ]* PRIVATE KEY-----(?:(?s:.*?)-----END[A-Z ]* PRIVATE KEY-----|[A-Za-z0-9+/=\s]*)",
    r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}\b",  # AWS access key ids
    r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b",                # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b",              # GitHub fine-grained tokens
    r"\bglpat-[A-Za-z0-9_-]{20,}",                       # GitLab personal access tokens
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",                  # Slack tokens
    r"https://hooks\.slack\.com/services/[A-Za-z0-9/]{20,}",  # Slack webhooks
    r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}",           # Stripe secret and restricted keys
    r"\bsk-(?:proj|svcacct|admin|ant)-[A-Za-z0-9_-]{20,}",  # OpenAI project / Anthropic keys
    r"\bsk-[A-Za-z0-9]{48}\b",                           # OpenAI legacy keys
    r"\bAIza[0-9A-Za-z_-]{35}",                          # Google API keys
    r"\bhf_[A-Za-z0-9]{34,}\b",                          # Hugging Face tokens
    r"\bnpm_[A-Za-z0-9]{36}\b",                          # npm tokens
    r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}",         # PyPI API tokens
    r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",  # JSON web tokens
])
# Letters of any script (internationalised addresses); a label's length is not bounded (63 by the RFC): a bounded
# repeat of Unicode classes makes RE2 some 30 times slower.
_EMAIL = r"[\p{L}\p{N}._%+-]+@(?:[\p{L}\p{N}][\p{L}\p{N}-]*\.)+\p{L}{2,24}"
_IBAN = r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"
_CARD = (r"\b(?:[0-9]{13,19}|[0-9]{4}(?:[ -][0-9]{4}){2,3}(?:[ -][0-9]{1,3})?"  # compact; 4-4-4-4(-3)
         r"|[0-9]{4}[ -][0-9]{6}[ -][0-9]{4,5})\b")                                 # Amex, Diners: 4-6-5, 4-6-4
_IPV6 = (rf"(?:\b(?:{_HEX}{{1,4}}:){{7}}{_HEX}{{1,4}}\b"  # the full form; the compressed one must start with
         rf"|\b{_HEX}{{3,4}}(?::{_HEX}{{1,4}}){{0,5}}::(?:{_HEX}{{1,4}}(?::{_HEX}{{1,4}}){{0,5}}\b)?)")  # 3+ hex digits
_IPV4 = r"\b[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?:\.[0-9]+)*\b"  # a fifth part is matched to reject the whole
_PRE = r"(?:\b[A-Z]{2}[0-9]{2}(?: [A-Z0-9]{4})* )?(?:\b[0-9]{1,6} )*"
_PHONE = "|".join([
    # international, +country code; the last group has 2 digits or more (not "+35236450.6")
    r"\+[1-9][0-9]{0,3}(?:[ .-]?\([0-9]{1,4}\))?(?:[ .-]?[0-9]{1,5}){0,5}[ .-]?[0-9]{2,5}\b",
    r"(?:\([0-9]{3}\) ?|\b[0-9]{3}[.-])[0-9]{3}[.-][0-9]{4}\b",          # North American
    # national, trunk 0, grouped by spaces (or 0xx xxxxxxxx); digit groups or an IBAN's head before it are
    # matched too, so that the check rejects the whole run: "5124 0741 2543 8810" (a card failing Luhn) or
    # "GB36 DRZB 0270 2892 5450 73" (an IBAN failing mod 97) is no phone number either
    _PRE + r"\b0[0-9]{1,4}(?: [0-9]{2,4}){1,4}\b",
    _PRE + r"\b0[0-9]{2,4} [0-9]{5,8}\b",
    r"\(0[0-9]{1,4}\) ?[0-9]{2,8}(?:[ -][0-9]{2,8}){0,2}\b",               # national, (0xx) area code
])

KINDS: tuple[Kind, ...] = (
    Kind("secret", "<SECRET>", _SECRETS),
    Kind("email", "<EMAIL>", _EMAIL),
    Kind("iban", "<IBAN>", _IBAN, checks.iban),
    Kind("card", "<CARD>", _CARD, checks.card),
    Kind("ip", "<IP>", _IPV6),
    Kind("ip", "<IP>", _IPV4, checks.ipv4),
    Kind("phone", "<PHONE>", _PHONE, checks.phone),
)
NAMES: tuple[str, ...] = tuple(dict.fromkeys(k.name for k in KINDS))
