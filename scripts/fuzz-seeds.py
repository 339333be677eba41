#!/usr/bin/env python3
"""Write the fuzz targets' seed corpora, fuzz/corpus/<target>/<sha1 of the seed> (committed).

    scripts/fuzz-seeds.py            rewrite every target's seeds from the sources below

Seeds come from the repository's own examples and test data (the expression corpus, the docs'
migrations and dynamorph.yaml, configs/, the SigV4 vectors) plus hand-written responses, stream
records and export files. Each seed is in its target's input format (see fuzz/<target>_fuzz.cpp).
"""
import glob
import gzip
import hashlib
import json
import os
import shutil
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


def expression_seeds():
    seeds = [b"A" + s.encode() for s in (
        "SK = :s_a AND name <> lower(name)",
        "begins_with(lower(s), 'al') AND size(trim(s)) > 2 AND coalesce(zz, s) = 'alpha'",
        "epoch_ms(createdAt) BETWEEN 1 AND epoch_ms(now()) OR split_part(s, 'l', -1) IN ('pha', 'x')",
    )]
    seeds += [b"C" + s.encode() for s in (
        "SET SK = concat('PHOTO#', to_string(epoch_ms(createdAt)), '#', strip_prefix(pk, 'a'))",
        "SET a = substr(s, 2, 3), b = replace(s, 'a', 'b''c'), c = to_number('42') + -1.5, d = uuid(), e = ulid()",
        "SET status = upper(status) REMOVE data ADD n 1 DELETE ss :ss_a",
    )]
    # Mode byte: '@' condition/Server, 'A' condition/Client, 'B' update/Server, 'C' update/Client.
    for line in read("tests/expr/data/expr_corpus.txt").decode().splitlines():
        if line.startswith("C "):
            seeds += [b"@" + line[2:].encode(), b"A" + line[2:].encode()]
        elif line.startswith("U "):
            seeds += [b"B" + line[2:].encode(), b"C" + line[2:].encode()]
    return seeds


def migration_seeds():
    seeds = [read(p) for p in sorted(glob.glob(os.path.join(ROOT, "docs/examples/migrations/*.yaml")))]
    seeds.append(b"""version: 3
name: lua_and_schema
up:
  - pipeline:
      source: { table: app }
      transform:
        - lua: { file: t.lua }
        - lua: { code: "function transform(item) return item end", max_instructions: 1000 }
      write: { mode: batch, cleanup_version_attribute: true, version_attribute: _v }
down: irreversible
""")
    seeds.append(b"""version: 4
name: tables
up:
  - create_table: { table: posts, partition_key: "id:string", sort_key: "at:number", ttl: expires,
                    billing: { read: 5, write: 5 } }
  - add_gsi: { table: posts, index: by_at, partition_key: "at:number", projection: keys_only }
  - update_ttl: { table: posts, attribute: expires }
  - enable_stream: { table: posts, view: NEW_AND_OLD_IMAGES }
down:
  - delete_gsi: { table: posts, index: by_at }
  - delete_table: { table: posts }
""")
    return seeds


def config_seeds():
    texts = [read("docs/examples/dynamorph.yaml")]
    texts += [read(p) for p in sorted(glob.glob(os.path.join(ROOT, "configs/*.yaml")))]
    texts.append(b"""region: us-east-1
namespace: dev-
lock_ttl: 1m30s
defaults: { segments: 4, max_wcu: 100, max_rcu: 200 }
pricing: { region: eu-west-1, as_of: 2026-01-01, read_per_million: 0.25, write_per_million: 1.25 }
journal: s3://bucket/prefix
environments:
  dev: { endpoint: "http://127.0.0.1:8000", lock_ttl: 500ms, journal: journal/ }
  prod: { namespace: prod-, state_table: state, migrations_dir: ../migrations, journal: ~ }
""")
    # First byte: the environment asked for (% 4: none, dev, prod, staging).
    return [bytes([e]) + t for t in texts for e in range(3)]


ITEM = {"PK": {"S": "USER#1"}, "n": {"N": "-1.5E+3"}, "b": {"B": "AQI="}, "t": {"BOOL": True},
        "z": {"NULL": True}, "l": {"L": [{"S": "x"}, {"M": {"y": {"N": "2"}}}]},
        "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": ["AQ=="]}}
KEY = {"PK": {"S": "USER#1"}}
CAPACITY = {"TableName": "t", "CapacityUnits": 1.5}


def response_seeds():
    bodies = {
        0: {"Items": [ITEM, KEY], "Count": 2, "ScannedCount": 3, "LastEvaluatedKey": KEY,
            "ConsumedCapacity": CAPACITY},
        1: {"UnprocessedItems": {"t": [{"PutRequest": {"Item": ITEM}},
                                       {"DeleteRequest": {"Key": KEY}}]},
            "ConsumedCapacity": [CAPACITY, CAPACITY]},
        2: {"Attributes": ITEM, "ConsumedCapacity": CAPACITY},
        3: {"Item": ITEM, "ConsumedCapacity": CAPACITY},
        4: {"Responses": {"t": [ITEM]}, "UnprocessedKeys": {"t": {"Keys": [KEY]}},
            "ConsumedCapacity": [CAPACITY]},
        5: {"TableDescription": {
            "TableName": "t", "TableStatus": "ACTIVE", "ItemCount": 3, "TableSizeBytes": 100,
            "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"},
                          {"AttributeName": "SK", "KeyType": "RANGE"}],
            "AttributeDefinitions": [{"AttributeName": "PK", "AttributeType": "S"},
                                     {"AttributeName": "SK", "AttributeType": "N"}],
            "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
            "BillingModeSummary": {"BillingMode": "PROVISIONED"},
            "GlobalSecondaryIndexes": [{
                "IndexName": "g", "IndexStatus": "CREATING", "Backfilling": True,
                "KeySchema": [{"AttributeName": "SK", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["a"]}}],
            "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
            "LatestStreamArn": "arn:aws:dynamodb:us-east-1:1:table/t/stream/x"}},
        6: {"TableNames": ["a", "b"], "LastEvaluatedTableName": "b"},
        7: {"TimeToLiveDescription": {"TimeToLiveStatus": "ENABLED", "AttributeName": "exp"}},
        8: {"__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "message": "Transaction cancelled, please refer cancellation reasons for specific "
                       "reasons [ConditionalCheckFailed, None]",
            "CancellationReasons": [{"Code": "ConditionalCheckFailed", "Message": "The condition"},
                                    {"Code": "None"}, {"Code": "ThrottlingError"}]},
        9: ITEM,
    }
    seeds = [bytes([m]) + json.dumps(b).encode() for m, b in bodies.items()]
    seeds.append(bytes([8]) + b'{"__type":"x#TransactionCanceledException","message":"reasons [None, TransactionConflict]"}')
    seeds.append(bytes([8]) + b'{"__type":"com.amazon.coral.service#ThrottlingException","Message":"Rate exceeded"}')
    seeds.append(bytes([8]) + b"<html>502 Bad Gateway</html>")
    return seeds


def sigv4_seeds():
    cases = json.loads(read("tests/dynamo/data/sigv4_botocore_vectors.json"))["cases"]
    cases += json.loads(read("tests/dynamo/data/s3_sigv4_botocore_vectors.json"))["cases"]
    seeds = []
    for c in cases:
        s3 = c.get("service") == "s3"
        flags = (1 if s3 else 0) | (2 if c.get("session_token") else 0) | (4 if s3 else 0)
        head = bytes([flags]) + struct.pack(">I", c["epoch_seconds"] & 0xFFFFFFFF)
        lines = [c["method"], c["host"], c["path"], c["query"]]
        lines += [f"{n}:{v}" for n, v in c["headers"]] + [""]
        seeds.append(head + ("\n".join(lines) + "\n" + c.get("body", "")).encode())
    return seeds


def export_seeds():
    lines = [json.dumps({"Item": ITEM}), json.dumps({"Item": KEY}),
             '{"Item":{"PK":{"S":"\\u00e9\\ud83d\\ude00"},"n":{"N":"1e-130"}}}']
    text = "\n".join(lines).encode()
    summary = json.dumps({"version": "2020-06-30", "exportArn": "arn:x", "tableArn": "arn:t",
                          "exportTime": "2026-11-22T10:00:00Z", "exportType": "FULL_EXPORT",
                          "outputFormat": "DYNAMODB_JSON", "itemCount": 3,
                          "manifestFilesS3Key": "AWSDynamoDB/x/manifest-files.json"}).encode()
    files = (json.dumps({"itemCount": 3, "md5Checksum": "1B2M2Y8AsgTpgAmY7PhCfg==", "etag": "e",
                         "dataFileS3Key": "AWSDynamoDB/x/data/a.json.gz"}) + "\n").encode()
    compressed = gzip.compress(text + b"\n", mtime=0)
    return [
        bytes([0]) + summary + b"\x01" + files,
        bytes([1, 7, 5, 2, 2, 1]) + text,
        bytes([1, 63, 63, 7, 1, 0]) + text + b"\n",
        bytes([2, 3]) + compressed,
        bytes([2, 3]) + compressed + compressed[:20],
        bytes([3]) + b"3:1201\ns3://bucket/AWSDynamoDB/x/manifest-summary.json",
        bytes([3]) + b"0:1\n/exports/AWSDynamoDB/x/",
    ]


def streams_seeds():
    record = {"eventID": "1", "eventName": "MODIFY", "eventVersion": "1.1",
              "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
              "dynamodb": {"ApproximateCreationDateTime": 1.7e9, "Keys": KEY, "NewImage": ITEM,
                           "OldImage": KEY, "SequenceNumber": "000000000000000000001",
                           "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"}}
    describe = {"StreamDescription": {
        "StreamArn": "arn:s", "StreamStatus": "ENABLED", "StreamViewType": "NEW_IMAGE",
        "TableName": "t", "LastEvaluatedShardId": "shard-2",
        "Shards": [{"ShardId": "shard-1", "SequenceNumberRange": {"StartingSequenceNumber": "1",
                                                                  "EndingSequenceNumber": "9"}},
                   {"ShardId": "shard-2", "ParentShardId": "shard-1",
                    "SequenceNumberRange": {"StartingSequenceNumber": "10"}}]}}
    return [
        bytes([0]) + json.dumps({"Records": [record, dict(record, eventName="REMOVE")],
                                 "NextShardIterator": "it-2"}).encode(),
        bytes([0]) + b'{"Records":[]}',
        bytes([1]) + json.dumps(describe).encode(),
        bytes([2]) + b'{"ShardIterator":"it-1"}',
        bytes([3]) + b"000123\n122",
        bytes([3]) + b"99999999999999999999999999999999999999\n100000000000000000000000000000000000000",
    ]


TARGETS = {"expression": expression_seeds, "migration": migration_seeds, "config": config_seeds,
           "response": response_seeds, "sigv4": sigv4_seeds, "export": export_seeds,
           "streams": streams_seeds}


def main():
    for target, make in TARGETS.items():
        folder = os.path.join(ROOT, "fuzz", "corpus", target)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        seeds = make()
        for seed in seeds:
            with open(os.path.join(folder, hashlib.sha1(seed).hexdigest()), "wb") as f:
                f.write(seed)
        print(f"fuzz-seeds: {target}: {len(seeds)} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
