"""The `pii` stage and policy: each kind found and redacted on hand-made texts, near misses left alone, unicode,
empty and null rows, overlapping finds counted once, the policy's decisions and reasons, and through the engine
(local executor) the redacted text written by `export --materialize`."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import curate
from curate.errors import ConfigError
from curate.methods.pii import PII, PIIPolicy, checks
from curate.policy import Rows
from curate.report import write_report
from curate.report.view import lines
from testkit.helpers import write_shards

PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
       "aXJNaWxsZXJAZXhhbXBsZS5jb20gNDExMTExMTExMTExMTExMQ==\n-----END RSA PRIVATE KEY-----")
GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"

FOUND = [  # (kind, the value, a sentence holding it)
    ("email", "jane.doe+news@mail.example.co.uk", "Write to jane.doe+news@mail.example.co.uk today."),
    ("email", "jürgen@exämple.de", "Grüße an jürgen@exämple.de ☃"),
    ("ip", "192.168.0.1", "the router at 192.168.0.1."),
    ("ip", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "v6 2001:0db8:85a3:0000:0000:8a2e:0370:7334 up"),
    ("ip", "fe80::1ff:fe23:4567:890a", "link-local fe80::1ff:fe23:4567:890a, then"),
    ("phone", "+1 415 555 2671", "call +1 415 555 2671 now"),
    ("phone", "(415) 555-2671", "or (415) 555-2671."),
    ("phone", "+44 20 7946 0958", "London: +44 20 7946 0958"),
    ("phone", "020 7946 0958", "London: 020 7946 0958"),
    ("card", "4111 1111 1111 1111", "Visa 4111 1111 1111 1111 exp 12/29"),
    ("card", "5500-0000-0000-0004", "MC 5500-0000-0000-0004."),
    ("card", "378282246310005", "Amex 378282246310005"),
    ("iban", "GB82 WEST 1234 5698 7654 32", "pay GB82 WEST 1234 5698 7654 32 please"),
    ("iban", "DE89370400440532013000", "IBAN: DE89370400440532013000."),
    ("secret", "AKIAIOSFODNN7EXAMPLE", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE"),
    ("secret", PEM, f"key:\n{PEM}\nend"),
    ("secret", GITHUB, f"token={GITHUB}"),
    ("secret", "xoxb-123456789012-abcdefABCDEF", "SLACK=xoxb-123456789012-abcdefABCDEF"),
    ("secret", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe.api_key = 'sk_live_4eC39HqLyjWDarjtT1zdp7dc'"),
]

NOT_FOUND = [  # (kind, a sentence with a near miss)
    ("card", "order 4111 1111 1111 1112 (Luhn fails)"),
    ("card", "id 1234567890123452 starts with 1"),
    ("card", "Mo Tu We\n 4  5  6  7  8  9 10\n11 12 13 14 15 16 17"),  # a calendar
    ("card", "n = 573763426263223372  # Luhn holds, but no network issues 57... numbers"),
    ("iban", "pay GB82 WEST 1234 5698 7654 33 please"),
    ("iban", "IBAN: DE88370400440532013000."),
    ("iban", "pay DE98 GMFR 1373 0501 0553 70 (the digits are no phone number either)"),
    ("iban", "pay GB36 DRZB 0270 2892 5450 73 (nor here)"),
    ("card", "card 5124 0741 2543 8810 (nor here)"),
    ("email", "user@localhost and name@domain"),
    ("email", "@property\ndef f(x): return x@W.T"),
    ("ip", "999.1.1.1 and 1.2.3.4.5 and 256.0.0.1"),
    ("ip", "slice x[1::2] and std::vector and 12:30:45"),
    ("phone", "dates 01 02 2024 and 2024-01-15, version 1.2.3"),
    ("phone", "Decimal('+35236450.6') and '+000000120' and '12 31 04 000047 33'"),
    ("secret", "ghp_short and AKIA lowercase akiaiosfodnn7example"),
]


def score(texts: list[str | None], **kwargs) -> dict:
    stage = PII(**kwargs)
    return stage.score(pa.table({"text": pa.array(texts, pa.string())})).to_pydict()


@pytest.mark.parametrize("kind, value, text", FOUND, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(FOUND)])
def test_each_kind_is_found_counted_and_replaced_by_its_placeholder(kind, value, text):
    out = score([text])
    assert out[kind] == [1] and out["finds"] == [1], out
    assert out["text"] == [text.replace(value, f"<{kind.upper()}>")]


@pytest.mark.parametrize("kind, text", NOT_FOUND, ids=[f"{k}-{i}" for i, (k, _) in enumerate(NOT_FOUND)])
def test_a_near_miss_is_not_found(kind, text):
    out = score([text])
    assert out["finds"] == [0] and out["text"] == [text], out


def test_every_find_in_a_row_is_counted_and_the_rest_of_the_text_kept():
    text = ("From a@b.com,c@d.org to 10.0.0.1; card 4111111111111111 and 4111111111111112; "
            "token ghp_" + "x" * 36 + ".")
    out = score([text])
    assert (out["email"], out["ip"], out["card"], out["secret"], out["finds"]) == ([2], [1], [1], [1], [5])
    assert out["text"] == ["From <EMAIL>,<EMAIL> to <IP>; card <CARD> and 4111111111111112; token <SECRET>."]


def test_overlapping_finds_are_counted_once_under_the_first_kind():
    out = score([
        PEM,                                   # an e-mail and a card number inside a private key: one secret
        "sk_live_4111111111111111abcdEFGH",    # a card number inside a Stripe key: one secret
        "4111111111111111@example.com",        # a card number as an e-mail's local part: one e-mail
        "root@192.168.0.1",                    # not an e-mail (no letter TLD): the IP is found
    ])
    assert out["secret"] == [1, 1, 0, 0] and out["email"] == [0, 0, 1, 0]
    assert out["card"] == [0, 0, 0, 0] and out["ip"] == [0, 0, 0, 1] and out["finds"] == [1, 1, 1, 1]
    assert out["text"] == ["<SECRET>", "<SECRET>", "<EMAIL>", "root@<IP>"]


def test_a_private_key_block_without_its_end_line_is_still_a_secret():
    head = PEM.rsplit("\n", 1)[0]
    out = score([f"{head}\n"])
    assert out["secret"] == [1] and "MIIE" not in out["text"][0]


def test_empty_texts_count_zero_and_null_texts_are_per_row_errors():
    out = score(["", None, "a@b.com", "\x00\x01 a@b.com \x00"])
    assert out["finds"] == [0, None, 1, 1] and out["email"] == [0, None, 1, 1]
    assert out["error"] == [None, "null_text: column 'text' is null", None, None]
    assert out["text"] == ["", None, "<EMAIL>", "\x00\x01 <EMAIL> \x00"]  # NUL bytes survive the markers


def test_only_the_chosen_kinds_are_found_and_written():
    out = score(["a@b.com 10.0.0.1"], kinds=["ip"])
    assert set(out) == {"text", "ip", "finds", "error"} and out["text"] == ["a@b.com <IP>"]
    with pytest.raises(ConfigError):
        PII(kinds=["names"])


def test_the_checks_agree_with_their_definitions():
    rng = np.random.default_rng(0)
    numbers = ["".join(map(str, rng.integers(0, 10, rng.integers(13, 20)))) for _ in range(300)]

    def luhn(s: str) -> bool:  # the textbook loop, as a reference
        total = 0
        for i, ch in enumerate(reversed(s)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        return total % 10 == 0

    assert checks.luhn(pa.array(numbers)).tolist() == [luhn(s) for s in numbers]
    ibans = ["GB82WEST12345698765432", "NL91ABNA0417164300", "FR1420041010050500013M02606", "GB82WEST12345698765433"]
    expected = [int("".join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1 for s in ibans]
    assert checks.iban(pa.array(ibans)).tolist() == expected == [True, True, True, False]


def rows(**cols) -> Rows:
    n = len(next(iter(cols.values())))
    return Rows(np.asarray(cols["pii.finds"], np.float64), np.arange(n, dtype=np.uint64),
                {k: np.asarray(v) for k, v in cols.items()}, "shard")


def test_the_policy_drops_rows_over_a_bound_and_names_every_kind_and_count():
    policy = PIIPolicy(max_counts={"secret": 0, "email": 2}, max_total=5)
    assert policy.columns == ["pii.finds", "pii.secret", "pii.email"]
    keep, reason, _ = policy.decide_rows(rows(**{"pii.finds": [0, 3, 1, 6, 9], "pii.secret": [0, 0, 1, 0, 2],
                                                 "pii.email": [0, 2, 0, 3, 7]}))
    assert keep.tolist() == [True, True, False, False, False]
    assert reason.to_pylist() == [None, None, "pii: secret 1 > 0", "pii: email 3 > 2; total 6 > 5",
                                  "pii: secret 2 > 0; email 7 > 2; total 9 > 5"]


def test_a_policy_without_bounds_keeps_every_row():
    keep, reason, _ = PIIPolicy(max_counts={}).decide_rows(rows(**{"pii.finds": [0, 4]}))
    assert keep.tolist() == [True, True] and reason.null_count == 2


def corpus() -> pa.Table:
    texts = [text for _, _, text in FOUND] + [text for _, text in NOT_FOUND] + [None, "", "plain words only."]
    return pa.table({"id": [f"doc-{i:03d}" for i in range(len(texts))], "text": pa.array(texts, pa.string())})


def test_a_run_drops_secrets_and_export_writes_the_redacted_text(tmp_path):
    data = write_shards(tmp_path / "data", corpus(), 3)
    summary = curate.run(curate.Pipeline([PII()], [PIIPolicy()], id_column="id"), data, tmp_path / "run",
                         executor="local")
    manifest = {r["id"]: r for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    secrets = {f"doc-{i:03d}" for i, (k, _, _) in enumerate(FOUND) if k == "secret"}
    assert {i for i, r in manifest.items() if r["drop_reason"]} == secrets
    assert all(manifest[i]["drop_reason"] == "pii: secret 1 > 0" for i in secrets)
    null_id = f"doc-{len(FOUND) + len(NOT_FOUND):03d}"
    assert manifest[null_id]["error"] == "pii: null_text: column 'text' is null"
    assert summary["result"]["errored"] == 1 and "pii.text" not in manifest["doc-000"]

    curate.export(tmp_path / "run", materialize=tmp_path / "curated")
    out = pa.concat_tables([pq.read_table(p) for p in sorted((tmp_path / "curated").glob("*.parquet"))])
    assert out.schema == pq.read_schema(data / "part-00000.parquet")
    texts = dict(zip(out.column("id").to_pylist(), out.column("text").to_pylist()))
    assert len(texts) == corpus().num_rows - len(secrets) - 1
    for i, (kind, value, text) in enumerate(FOUND):
        if kind != "secret":
            assert texts[f"doc-{i:03d}"] == text.replace(value, f"<{kind.upper()}>")
    for j, (_, text) in enumerate(NOT_FOUND):
        assert texts[f"doc-{len(FOUND) + j:03d}"] == text


def test_a_bound_on_a_kind_the_stage_does_not_find_is_refused_before_any_compute():
    with pytest.raises(ConfigError, match="'pii.secret', which no stage writes"):
        curate.Pipeline([PII(kinds=["email"])], [PIIPolicy()], id_column="id")
    with pytest.raises(ConfigError, match="max_counts"):
        PIIPolicy(max_counts={"email": -1})


def test_the_report_and_the_cli_show_counts_by_kind_and_no_text(tmp_path):
    data = write_shards(tmp_path / "data", corpus(), 2)
    curate.run(curate.Pipeline([PII()], [PIIPolicy()], id_column="id"), data, tmp_path / "run", executor="local")
    secrets = sum(k == "secret" for k, _, _ in FOUND)
    emails = sum(k == "email" for k, _, _ in FOUND)
    said = lines(tmp_path / "run")
    assert len(said) == 1 and said[0].startswith(f"pii: secret {secrets} in {secrets} rows, email {emails} in")
    assert said[0].endswith(f"; pii dropped {secrets} rows")
    page = write_report(tmp_path / "run", tmp_path / "report.html").read_text()
    section = page.split("Personal data and secrets", 1)[1]
    assert f"dropped {secrets} rows" in section and "jane.doe" not in section


def _sorted_manifest(out) -> pa.Table:
    m = curate.load_manifest(out).drop_columns(["shard"])
    return m.take(pa.compute.sort_indices(m, [("id", "ascending")]))


@pytest.mark.slow
def test_local_and_ray_give_the_same_manifest_and_redacted_text(tmp_path, shared_ray):
    data = write_shards(tmp_path / "data", corpus(), 3)
    for executor in ("local", "ray"):
        curate.run(curate.Pipeline([PII()], [PIIPolicy(max_counts={"secret": 0, "card": 0})], id_column="id"), data,
                   tmp_path / executor, executor=executor)
        curate.export(tmp_path / executor, materialize=tmp_path / f"{executor}-curated")
    assert _sorted_manifest(tmp_path / "local").equals(_sorted_manifest(tmp_path / "ray"))
    local, ray = ([pq.read_table(p) for p in sorted((tmp_path / f"{e}-curated").glob("*.parquet"))] for e in ("local", "ray"))
    assert [t.to_pylist() for t in local] == [t.to_pylist() for t in ray]
