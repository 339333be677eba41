#!/usr/bin/python3
"""bench/dataset.py -- dynamorph's own deterministic benchmark data set, seeder, scanner, verifier.

Same shape as the baseline peers' data set (single-table design, ~300-byte items):
  ~80 %  PK=USER#<id>  SK=PROFILE        username (mixed case), email, age (N), tags (SS), bio
  ~20 %  PK=USER#<id>  SK=PHOTO#<uuid>   createdAt (ISO), url, size (N), caption
  every item padded (bio / caption) to a DynamoDB item size drawn from 260..340 bytes.
The job (the peers' one): for PK beginning USER# and SK = PROFILE,
  SET username = lower(username), migratedAt = "2025-01-01T00:00:00.000Z".

  dataset.py seed   --endpoint URL --n N [--seed 42] [--table bench] [--threads 4]
  dataset.py scan   --endpoint URL [--table bench] [--segments 8]       (warm-up, counts only)
  dataset.py verify --endpoint URL --n N [--seed 42] [--table bench] [--state migrated|original]

Talks raw DynamoDB JSON over keep-alive HTTP to 127.0.0.1 (DynamoDB Local does not check
signatures), so the seeder and verifier cost little CPU next to the server. verify compares
every attribute of every item to what regenerate(N, seed) says it must be: missing, extra,
duplicate, changed and not-migrated items all fail (exit 1).
"""
import argparse
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse

MIGRATED_AT = "2025-01-01T00:00:00.000Z"

GIVEN = ["amara", "bruno", "chen", "dmitri", "elena", "farah", "gustav", "hana", "ines", "jamal",
         "keiko", "lars", "maya", "noor", "oskar", "priya", "quinn", "rosa", "sven", "tariq"]
FAMILY = ["garcia", "muller", "rossi", "nakamura", "kowalski", "okafor", "larsen", "dubois",
          "silva", "novak", "haddad", "kim", "oconnor", "petrov", "ward", "yilmaz"]
TAGS = ["aws", "dynamodb", "cpp", "serverless", "hiking", "cooking", "film", "jazz", "chess",
        "cycling", "gardening", "poetry", "running", "climbing", "design", "coffee"]
FILLER = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while",
          "seven", "wizards", "hum", "softly", "near", "amber", "lanterns", "at", "dusk"]
EPOCH_S = 1577836800  # 2020-01-01T00:00:00Z


def n_size(v):
    digits = v.lstrip("-").replace(".", "").strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def item_size(item):
    """DynamoDB item size: attribute names + values (S: UTF-8 bytes, N: ~digits/2+1, SS: sum)."""
    total = 0
    for name, v in item.items():
        total += len(name.encode())
        (t, x), = v.items()
        if t == "S":
            total += len(x.encode())
        elif t == "N":
            total += n_size(x)
        elif t == "SS":
            total += sum(len(s.encode()) for s in x)
        else:
            raise ValueError(t)
    return total


def _filler(rng, n):
    words, length = [], -1
    while length < n:
        w = FILLER[rng.randrange(len(FILLER))]
        words.append(w)
        length += len(w) + 1
    return " ".join(words)[:max(n, 1)]


def _iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def generate(n, seed=42):
    """Yields n items in DynamoDB JSON, deterministic for (n, seed)."""
    rng = random.Random(seed)
    users = 0
    for _ in range(n):
        want = rng.randint(260, 340)
        if users == 0 or rng.random() < 0.8:
            uid, users = users, users + 1
            g, f = GIVEN[rng.randrange(len(GIVEN))], FAMILY[rng.randrange(len(FAMILY))]
            base = f"{g}_{f}{rng.randint(1, 99999)}"
            # first letter upper-case, others 35 %: lower() always changes the value
            uname = "".join(c.upper() if i == 0 or rng.random() < 0.35 else c for i, c in enumerate(base))
            item = {
                "PK": {"S": f"USER#{uid:08d}"},
                "SK": {"S": "PROFILE"},
                "username": {"S": uname},
                "email": {"S": f"{g}.{f}{uid}@mail.example.org"},
                "age": {"N": str(rng.randint(16, 95))},
                "tags": {"SS": sorted(rng.sample(TAGS, rng.randint(1, 5)))},
            }
            pad = "bio"
        else:
            uid = rng.randrange(users)
            pid = "%08x-%04x-4%03x-%04x-%012x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12),
                                                  0x8000 | rng.getrandbits(14), rng.getrandbits(48))
            item = {
                "PK": {"S": f"USER#{uid:08d}"},
                "SK": {"S": f"PHOTO#{pid}"},
                "createdAt": {"S": _iso(EPOCH_S + rng.randrange(6 * 365 * 86400))},
                "url": {"S": f"https://cdn.example.org/p/{uid:08d}/{pid}.webp"},
                "size": {"N": str(rng.randint(20_000, 8_000_000))},
            }
            pad = "caption"
        item[pad] = {"S": _filler(rng, want - item_size(item) - len(pad))}
        yield item


def is_target(item):
    return item["PK"]["S"].startswith("USER#") and item["SK"]["S"] == "PROFILE"


def migrated(item):
    if not is_target(item):
        return item
    out = dict(item)
    out["username"] = {"S": item["username"]["S"].lower()}
    out["migratedAt"] = {"S": MIGRATED_AT}
    return out


def canon(item):
    return {k: (("SS", tuple(sorted(v["SS"]))) if "SS" in v else next(iter(v.items()))) for k, v in item.items()}


def key_of(item):
    return (item["PK"]["S"], item["SK"]["S"])


# ---- raw DynamoDB over HTTP ---------------------------------------------------------------------

class Conn:
    def __init__(self, endpoint):
        u = urllib.parse.urlparse(endpoint)
        if u.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"dataset.py talks to loopback only, not {u.hostname}")
        self.host, self.port = "127.0.0.1", u.port or 80
        self.c = None

    def call(self, op, body, tries=8):
        data = json.dumps(body, separators=(",", ":")).encode()
        hdr = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"DynamoDB_20120810.{op}",
               "Authorization": "AWS4-HMAC-SHA256 Credential=local/20250101/us-east-1/dynamodb/aws4_request, "
                                "SignedHeaders=host, Signature=0",
               "X-Amz-Date": "20250101T000000Z"}
        for attempt in range(tries):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection(self.host, self.port, timeout=120)
                self.c.request("POST", "/", data, hdr)
                r = self.c.getresponse()
                out = r.read()
                if r.status == 200:
                    return json.loads(out)
                if r.status >= 500 or b"Throttl" in out:
                    time.sleep(0.05 * 2 ** attempt)
                    continue
                raise RuntimeError(f"{op}: HTTP {r.status}: {out[:300]!r}")
            except (ConnectionError, http.client.HTTPException, OSError):
                self.c = None
                time.sleep(0.05 * 2 ** attempt)
        raise RuntimeError(f"{op}: gave up after {tries} attempts")


def create_table(conn, table):
    try:
        conn.call("DeleteTable", {"TableName": table}, tries=1)
    except RuntimeError:
        pass
    conn.call("CreateTable", {
        "TableName": table, "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "PK", "AttributeType": "S"},
                                 {"AttributeName": "SK", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}]})
    for _ in range(600):
        if conn.call("DescribeTable", {"TableName": table})["Table"]["TableStatus"] == "ACTIVE":
            return
        time.sleep(0.1)
    raise RuntimeError("table never became ACTIVE")


def seed(endpoint, table, n, s, threads=4, quiet=False):
    t0 = time.time()
    create_table(Conn(endpoint), table)
    items = list(generate(n, s))
    batches = [items[i:i + 25] for i in range(0, len(items), 25)]
    lock = threading.Lock()
    nxt = [0]
    err = []

    def worker():
        conn = Conn(endpoint)
        while not err:
            with lock:
                if nxt[0] >= len(batches):
                    return
                b = batches[nxt[0]]
                nxt[0] += 1
            req = {table: [{"PutRequest": {"Item": it}} for it in b]}
            try:
                for attempt in range(30):
                    r = conn.call("BatchWriteItem", {"RequestItems": req})
                    req = r.get("UnprocessedItems") or {}
                    if not req:
                        break
                    time.sleep(0.02 * min(2 ** attempt, 50))
                else:
                    raise RuntimeError("UnprocessedItems never drained")
            except Exception as e:  # noqa: BLE001
                err.append(e)

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if err:
        raise err[0]
    wall = time.time() - t0
    profiles = sum(1 for it in items if is_target(it))
    rec = {"seeded": n, "profiles": profiles, "photos": n - profiles, "wall_s": round(wall, 2),
           "items_per_s": round(n / wall, 1), "mean_item_bytes": round(sum(map(item_size, items)) / n, 1)}
    if not quiet:
        print(json.dumps(rec), flush=True)
    return rec


def scan_all(endpoint, table, segments=8, consistent=False, keep=True):
    out = [[] for _ in range(segments)]
    scanned = [0] * segments
    err = []

    def worker(seg):
        conn = Conn(endpoint)
        req = {"TableName": table, "Segment": seg, "TotalSegments": segments, "ConsistentRead": consistent}
        try:
            while True:
                r = conn.call("Scan", req)
                scanned[seg] += r["ScannedCount"]
                if keep:
                    out[seg].extend(r["Items"])
                if "LastEvaluatedKey" not in r:
                    return
                req["ExclusiveStartKey"] = r["LastEvaluatedKey"]
        except Exception as e:  # noqa: BLE001
            err.append(e)

    ts = [threading.Thread(target=worker, args=(s,)) for s in range(segments)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if err:
        raise err[0]
    return [i for seg in out for i in seg], sum(scanned)


def verify(endpoint, table, n, s, state="migrated", quiet=False):
    t0 = time.time()
    expected = {}
    for it in generate(n, s):
        it = migrated(it) if state == "migrated" else it
        expected[key_of(it)] = canon(it)
    actual, _ = scan_all(endpoint, table, consistent=True)
    seen = set()
    problems = {"missing": 0, "extra": 0, "duplicate": 0, "wrong": 0}
    examples = []
    for it in actual:
        k = key_of(it)
        if k in seen:
            problems["duplicate"] += 1
            examples.append(f"duplicate {k}")
            continue
        seen.add(k)
        want = expected.get(k)
        if want is None:
            problems["extra"] += 1
            examples.append(f"extra {k}")
        elif canon(it) != want:
            problems["wrong"] += 1
            if len(examples) < 5:
                diff = sorted(a for a in set(want) | set(canon(it)) if want.get(a) != canon(it).get(a))
                examples.append(f"wrong {k}: attributes {diff}")
    problems["missing"] = len(expected) - len(seen & set(expected))
    ok = not any(problems.values())
    rec = {"verify": "OK" if ok else "FAIL", "state": state, "expected": len(expected), "read": len(actual),
           "targets": sum(1 for v in expected.values() if v["SK"] == ("S", "PROFILE")), **problems,
           "examples": examples[:5], "wall_s": round(time.time() - t0, 2)}
    if not quiet:
        print(json.dumps(rec), flush=True)
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["seed", "scan", "verify", "stats"])
    ap.add_argument("--endpoint", default="http://127.0.0.1:8000")
    ap.add_argument("--table", default="bench")
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--segments", type=int, default=8)
    ap.add_argument("--state", choices=["migrated", "original"], default="migrated")
    a = ap.parse_args()
    if a.cmd == "seed":
        seed(a.endpoint, a.table, a.n, a.seed, a.threads)
    elif a.cmd == "scan":
        t0 = time.time()
        _, scanned = scan_all(a.endpoint, a.table, a.segments, keep=False)
        w = time.time() - t0
        print(json.dumps({"scan": scanned, "wall_s": round(w, 3), "items_per_s": round(scanned / w, 1)}))
    elif a.cmd == "stats":
        items = list(generate(a.n, a.seed))
        p = sum(map(is_target, items))
        print(json.dumps({"n": a.n, "profiles": p, "photos": a.n - p,
                          "mean_item_bytes": round(sum(map(item_size, items)) / a.n, 1),
                          "min": min(map(item_size, items)), "max": max(map(item_size, items))}))
    else:
        rec = verify(a.endpoint, a.table, a.n, a.seed, a.state)
        sys.exit(0 if rec["verify"] == "OK" else 1)


if __name__ == "__main__":
    main()
