#!/usr/bin/python3
"""Server side of the expression engine's differential test: asks DynamoDB (Local) to evaluate
filter and update expressions on given items and writes what it answered.

    /usr/bin/python3 expr_oracle.py INPUT.json OUTPUT.txt

INPUT.json (written by tests/expr/expression_differential_test.cpp):
    {"endpoint": "http://127.0.0.1:PORT", "table": "<unique prefix>",
     "names": {...}, "values": {...},            # shared placeholders (DynamoDB JSON)
     "items": [item, ...],                        # DynamoDB JSON, key attribute "pk" (S)
     "scans":   [{"expr": text[, "names": {...}, "values": {...}]}, ...],
     "updates": [{"expr": text, "items": [index, ...][, "names": …, "values": …]}, ...]}
A request without its own names/values carries the shared ones its text mentions, as DynamoDB
rejects unused placeholders.

OUTPUT.txt, one line per answer (JSON stays on one line):
    S <scan> OK <pk> <pk> ...        keys of the items the filter matched
    S <scan> ERR <message>
    U <update> <item> OK <item JSON>  the item after UpdateItem (ReturnValues ALL_NEW)
    U <update> <item> ERR <message>
    U <update> * ERR <message>        rejected before touching any item (the expression itself)

Update i on item j runs on a copy keyed "u<i>_<j>" in a second table. Items travel as DynamoDB
JSON through botocore's low-level client; only binaries are converted (base64 text <-> bytes),
since botocore encodes them itself. Both tables are deleted at the end.
"""
import base64
import json
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

PLACEHOLDER = re.compile(r"[#:][A-Za-z0-9_]+")
WORKERS = 8


def to_wire(value):
    """DynamoDB JSON with base64 binaries -> what botocore wants (bytes for B/BS)."""
    (tag, v), = value.items()
    if tag == "B":
        return {"B": base64.b64decode(v)}
    if tag == "BS":
        return {"BS": [base64.b64decode(x) for x in v]}
    if tag == "M":
        return {"M": {k: to_wire(x) for k, x in v.items()}}
    if tag == "L":
        return {"L": [to_wire(x) for x in v]}
    return value


def from_wire(value):
    (tag, v), = value.items()
    if tag == "B":
        return {"B": base64.b64encode(v).decode()}
    if tag == "BS":
        return {"BS": [base64.b64encode(x).decode() for x in v]}
    if tag == "M":
        return {"M": {k: from_wire(x) for k, x in v.items()}}
    if tag == "L":
        return {"L": [from_wire(x) for x in v]}
    return value


def item_to_wire(item):
    return {k: to_wire(v) for k, v in item.items()}


def item_from_wire(item):
    return {k: from_wire(v) for k, v in item.items()}


def one_line(text):
    return " ".join(str(text).split())


def error_text(e):
    return one_line(e.response.get("Error", {}).get("Message", str(e)))


class Oracle:
    def __init__(self, spec):
        self.spec = spec
        self.client = boto3.client(
            "dynamodb", endpoint_url=spec["endpoint"],
            region_name=os.environ.get("AWS_REGION", "us-east-1"),
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "dynamorphtest"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "dynamorphtest"),
            config=Config(max_pool_connections=WORKERS * 2, retries={"max_attempts": 10}))
        self.scan_table = spec["table"] + "_scan"
        self.update_table = spec["table"] + "_update"

    def placeholders(self, request):
        """ExpressionAttributeNames/Values for a request: its own, or the shared ones it mentions."""
        if "names" in request or "values" in request:
            names = request.get("names", {})
            values = request.get("values", {})
        else:
            used = set(PLACEHOLDER.findall(request["expr"]))
            names = {k: v for k, v in self.spec["names"].items() if k in used}
            values = {k: v for k, v in self.spec["values"].items() if k in used}
        kw = {}
        if names:
            kw["ExpressionAttributeNames"] = names
        if values:
            kw["ExpressionAttributeValues"] = {k: to_wire(v) for k, v in values.items()}
        return kw

    def create(self, name):
        self.client.create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        self.client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})

    def drop(self, name):
        try:
            self.client.delete_table(TableName=name)
        except ClientError:
            pass

    def put_all(self, table, items):
        batches = [items[i:i + 25] for i in range(0, len(items), 25)]

        def write(batch):
            requests = {table: [{"PutRequest": {"Item": item_to_wire(it)}} for it in batch]}
            while requests:
                r = self.client.batch_write_item(RequestItems=requests)
                requests = r.get("UnprocessedItems") or None

        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(write, batches))

    def scan(self, index, request):
        kw = dict(TableName=self.scan_table, FilterExpression=request["expr"])
        kw.update(self.placeholders(request))
        keys = []
        try:
            while True:
                r = self.client.scan(**kw)
                keys.extend(it["pk"]["S"] for it in r["Items"])
                if "LastEvaluatedKey" not in r:
                    break
                kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]
        except ClientError as e:
            return f"S {index} ERR {error_text(e)}"
        return f"S {index} OK " + " ".join(sorted(keys))

    def update_one(self, index, request, item_index):
        kw = dict(TableName=self.update_table, Key={"pk": {"S": f"u{index}_{item_index}"}},
                  UpdateExpression=request["expr"], ReturnValues="ALL_NEW")
        kw.update(self.placeholders(request))
        try:
            r = self.client.update_item(**kw)
        except ClientError as e:
            return False, error_text(e)
        return True, json.dumps(item_from_wire(r.get("Attributes", {})), separators=(",", ":"))

    def update(self, index, request):
        """All answers for one update expression; stops after the first item when the server
        rejects the expression itself."""
        lines = []
        for n, item_index in enumerate(request["items"]):
            ok, text = self.update_one(index, request, item_index)
            if not ok and n == 0 and (text.startswith("Invalid UpdateExpression")
                                      or "ExpressionAttribute" in text):
                return [f"U {index} * ERR {text}"]
            lines.append(f"U {index} {item_index} {'OK' if ok else 'ERR'} {text}")
        return lines

    def run(self, out_path):
        items = self.spec["items"]
        self.create(self.scan_table)
        self.create(self.update_table)
        try:
            self.put_all(self.scan_table, items)
            copies = []
            for i, request in enumerate(self.spec["updates"]):
                for j in request["items"]:
                    copy = dict(items[j])
                    copy["pk"] = {"S": f"u{i}_{j}"}
                    copies.append(copy)
            self.put_all(self.update_table, copies)
            with ThreadPoolExecutor(WORKERS) as pool:
                scans = list(pool.map(lambda a: self.scan(*a), enumerate(self.spec["scans"])))
                updates = list(pool.map(lambda a: self.update(*a), enumerate(self.spec["updates"])))
        finally:
            self.drop(self.scan_table)
            self.drop(self.update_table)
        with open(out_path, "w", encoding="utf-8") as out:
            for line in scans:
                out.write(line + "\n")
            for lines in updates:
                for line in lines:
                    out.write(line + "\n")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    Oracle(spec).run(sys.argv[2])


if __name__ == "__main__":
    main()
