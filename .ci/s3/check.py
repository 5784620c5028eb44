#!/usr/bin/env python3
"""boto3 checks of an S3 endpoint with one bucket (`io`), as cells' S3 gateway serves it.

    check.py --endpoint URL --access-key ID --secret SECRET [--label L] [--mode full|smoke]
             [--prefix personal-files/boto] [--skip NAME,...]

Runs each check in turn and prints one line per check: `ok   boto3 L: NAME (secs)` or
`FAIL boto3 L: NAME: reason`, followed for a failure by the traceback and the last HTTP requests
and responses seen on the wire (method, URL, headers, error body). Ends with the machine-read line
`RESULT <passed> <failed>` and exits 1 if any check failed.

--mode smoke runs a short subset (list buckets, put/get/list/delete, presigned GET, wrong secret):
it is for the second and third kinds of credentials. Retries are off, so a 5xx is seen, not hidden.
Every key lives under PREFIX/<random>/ so runs against the same endpoint do not collide.
"""
import argparse
import hashlib
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid

import boto3
import botocore
from botocore.config import Config

BUCKET = "io"  # --bucket changes it, only to try the checks on a mock that wants 3+ characters
MULTIPART_ETAG = '"605fd0ecb2ed1e7f2edcd87e306f5614-3"'
MULTIPART_SIZES = [5 << 20, 5 << 20, 1]


class Wire:
    """Keeps the last few requests and responses botocore sent and got, for failure reports."""

    def __init__(self):
        self.log = []

    def attach(self, client):
        client.meta.events.register("before-send", self.before_send)
        client.meta.events.register("after-call", self.after_call)

    def before_send(self, request, **_):
        self.log.append({"req": f"{request.method} {request.url}", "headers": dict(request.headers)})
        del self.log[:-4]

    def after_call(self, http_response, model, **_):
        if self.log:
            body = b""
            if http_response.status_code >= 300:
                body = http_response.content[:1500]
            self.log[-1]["resp"] = (model.name, http_response.status_code, dict(http_response.headers), body)

    def dump(self):
        out = []
        for e in self.log[-2:]:
            out.append(f"    > {e['req']}")
            for k, v in e["headers"].items():
                v = v.decode() if isinstance(v, bytes) else str(v)
                out.append(f"    >   {k}: {v if len(v) < 200 else v[:200] + '...'}")
            if "resp" in e:
                op, status, headers, body = e["resp"]
                out.append(f"    < {op}: HTTP {status}")
                for k, v in headers.items():
                    out.append(f"    <   {k}: {v}")
                if body:
                    out.append(f"    <   body: {body.decode('utf-8', 'replace')}")
        return "\n".join(out)


class Checks:
    def __init__(self, args):
        self.args = args
        self.wire = Wire()
        self.s3 = self.client(args.access_key, args.secret)
        self.base = f"{args.prefix.strip('/')}/{uuid.uuid4().hex[:8]}"
        self.passed = 0
        self.failed = 0

    def client(self, key, secret):
        c = boto3.client(
            "s3",
            endpoint_url=self.args.endpoint,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                signature_version="s3v4",
                retries={"mode": "standard", "total_max_attempts": 1},
            ),
        )
        self.wire.attach(c)
        return c

    def key(self, name):
        return f"{self.base}/{name}"

    def run(self, name, fn):
        if name in self.args.skip:
            print(f"skip boto3 {self.args.label}: {name}", flush=True)
            return
        self.wire.log.clear()
        t0 = time.monotonic()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
            self.failed += 1
            reason = f"{type(e).__name__}: {e}"
            if isinstance(e, botocore.exceptions.ClientError):
                meta = e.response.get("ResponseMetadata", {})
                reason += f" [HTTP {meta.get('HTTPStatusCode')}]"
            if isinstance(e, urllib.error.HTTPError):
                reason += f" for {e.url}: {e.read()[:1000]!r}"
            print(f"FAIL boto3 {self.args.label}: {name}: {reason}", flush=True)
            if isinstance(e, (AssertionError, botocore.exceptions.ClientError, urllib.error.HTTPError)):
                # Only where in this file it failed; the rest is botocore's own frames.
                frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == __file__]
                where = frames[-1] if frames else None
                if where:
                    print(f"    at check.py:{where.lineno}: {where.line}")
            else:
                print("    " + traceback.format_exc().strip().replace("\n", "\n    "))
            wire = self.wire.dump()
            if wire:
                print("    last requests on the wire:")
                print(wire, flush=True)
        else:
            self.passed += 1
            print(f"ok   boto3 {self.args.label}: {name} ({time.monotonic() - t0:.1f} s)", flush=True)

    # --- helpers -------------------------------------------------------------------------------

    def put(self, key, body, **kw):
        return self.s3.put_object(Bucket=BUCKET, Key=key, Body=body, **kw)

    def get(self, key, **kw):
        return self.s3.get_object(Bucket=BUCKET, Key=key, **kw)["Body"].read()

    def keys(self, prefix):
        r = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return [o["Key"] for o in r.get("Contents", [])]

    @staticmethod
    def meta(d):
        """User metadata with lower-case names: HTTP header names are case-insensitive, and some
        servers send them in canonical case (X-Amz-Meta-Color), which boto3 passes on as is."""
        return {k.lower(): v for k, v in d.items()}

    def expect_client_error(self, fn, codes, status=None):
        try:
            fn()
        except botocore.exceptions.ClientError as e:
            code = e.response["Error"]["Code"]
            got = e.response["ResponseMetadata"]["HTTPStatusCode"]
            assert code in codes, f"error code {code!r}, expected one of {codes}"
            assert status is None or got == status, f"HTTP {got}, expected {status}"
            return
        raise AssertionError(f"no error, expected one of {codes}")

    # --- checks --------------------------------------------------------------------------------

    def list_buckets(self):
        names = [b["Name"] for b in self.s3.list_buckets()["Buckets"]]
        assert BUCKET in names, f"buckets {names}"

    def head_bucket(self):
        r = self.s3.head_bucket(Bucket=BUCKET)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 200

    def put_get_list(self):
        k = self.key("hello.txt")
        r = self.put(k, b"hello")
        assert r["ETag"] == '"%s"' % hashlib.md5(b"hello").hexdigest(), f"put ETag {r['ETag']}"
        assert self.get(k) == b"hello"
        r = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=self.base + "/")
        got = {o["Key"]: o for o in r.get("Contents", [])}
        assert k in got, f"listed {sorted(got)}"
        assert got[k]["Size"] == 5, f"listed size {got[k]['Size']}"
        assert got[k]["ETag"] == '"%s"' % hashlib.md5(b"hello").hexdigest(), f"listed ETag {got[k]['ETag']}"

    def user_metadata(self):
        k = self.key("meta.txt")
        meta = {"color": "blue", "owner-name": "cells ci"}
        self.put(k, b"with metadata", Metadata=meta, ContentType="text/x-cells")
        h = self.s3.head_object(Bucket=BUCKET, Key=k)
        assert self.meta(h["Metadata"]) == meta, f"head Metadata {h['Metadata']}"
        assert h["ContentType"] == "text/x-cells", f"head ContentType {h['ContentType']}"
        assert h["ContentLength"] == 13, f"head ContentLength {h['ContentLength']}"
        g = self.s3.get_object(Bucket=BUCKET, Key=k)
        assert self.meta(g["Metadata"]) == meta, f"get Metadata {g['Metadata']}"

    def range_get(self):
        k = self.key("range.txt")
        self.put(k, b"hello world")
        r = self.s3.get_object(Bucket=BUCKET, Key=k, Range="bytes=1-3")
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 206, f"HTTP {r['ResponseMetadata']['HTTPStatusCode']}"
        assert r["Body"].read() == b"ell"
        assert r["ContentRange"] == "bytes 1-3/11", f"ContentRange {r['ContentRange']}"
        assert self.get(k, Range="bytes=-5") == b"world"
        assert self.get(k, Range="bytes=6-") == b"world"

    def copy(self):
        src, dst = self.key("copy-src.txt"), self.key("copy-dst.txt")
        self.put(src, b"copy me", Metadata={"kept": "yes"})
        self.s3.copy_object(Bucket=BUCKET, Key=dst, CopySource={"Bucket": BUCKET, "Key": src})
        assert self.get(dst) == b"copy me"
        assert self.get(src) == b"copy me", "source gone after copy"
        h = self.s3.head_object(Bucket=BUCKET, Key=dst)
        assert self.meta(h["Metadata"]) == {"kept": "yes"}, f"copied Metadata {h['Metadata']}"
        self.s3.copy_object(
            Bucket=BUCKET,
            Key=dst,
            CopySource={"Bucket": BUCKET, "Key": src},
            Metadata={"replaced": "1"},
            MetadataDirective="REPLACE",
        )
        h = self.s3.head_object(Bucket=BUCKET, Key=dst)
        assert self.meta(h["Metadata"]) == {"replaced": "1"}, f"REPLACE Metadata {h['Metadata']}"

    def copy_across_workspaces(self):
        src = self.key("to-common.txt")
        dst = f"common-files/{self.base.split('/', 1)[1]}/from-personal.txt"
        self.put(src, b"across workspaces")
        self.s3.copy_object(Bucket=BUCKET, Key=dst, CopySource={"Bucket": BUCKET, "Key": src})
        assert self.get(dst) == b"across workspaces"
        self.s3.delete_object(Bucket=BUCKET, Key=dst)

    def delete(self):
        k = self.key("delete-me.txt")
        self.put(k, b"bye")
        r = self.s3.delete_object(Bucket=BUCKET, Key=k)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 204, f"HTTP {r['ResponseMetadata']['HTTPStatusCode']}"
        self.expect_client_error(lambda: self.s3.head_object(Bucket=BUCKET, Key=k), {"404", "NoSuchKey"}, 404)
        self.expect_client_error(lambda: self.s3.get_object(Bucket=BUCKET, Key=k), {"NoSuchKey"}, 404)
        assert k not in self.keys(k), "still listed"

    def delete_objects(self):
        ks = [self.key(f"many/d{i}.txt") for i in range(3)]
        for k in ks:
            self.put(k, b"x")
        r = self.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in ks]})
        assert sorted(d["Key"] for d in r.get("Deleted", [])) == ks, f"Deleted {r.get('Deleted')}"
        assert not r.get("Errors"), f"Errors {r['Errors']}"
        left = [k for k in self.keys(self.key("many/")) if not k.endswith("/")]
        assert left == [], f"still listed {left}"

    def multipart(self):
        k = self.key("multipart.bin")
        mp = self.s3.create_multipart_upload(Bucket=BUCKET, Key=k)
        uid = mp["UploadId"]
        parts = []
        for i, size in enumerate(MULTIPART_SIZES, start=1):
            r = self.s3.upload_part(Bucket=BUCKET, Key=k, PartNumber=i, UploadId=uid, Body=b"x" * size)
            parts.append({"PartNumber": i, "ETag": r["ETag"]})
        listed = self.s3.list_parts(Bucket=BUCKET, Key=k, UploadId=uid)["Parts"]
        assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed] == [
            (p["PartNumber"], s, p["ETag"]) for p, s in zip(parts, MULTIPART_SIZES)
        ], f"list_parts {listed}"
        uploads = self.s3.list_multipart_uploads(Bucket=BUCKET, Prefix=k).get("Uploads", [])
        assert uid in [u["UploadId"] for u in uploads], f"list_multipart_uploads {uploads}"
        r = self.s3.complete_multipart_upload(Bucket=BUCKET, Key=k, UploadId=uid, MultipartUpload={"Parts": parts})
        assert r["ETag"] == MULTIPART_ETAG, f"complete ETag {r['ETag']}"
        h = self.s3.head_object(Bucket=BUCKET, Key=k)
        assert h["ContentLength"] == sum(MULTIPART_SIZES), f"ContentLength {h['ContentLength']}"
        assert h["ETag"] == MULTIPART_ETAG, f"head ETag {h['ETag']}"
        assert self.get(k) == b"x" * sum(MULTIPART_SIZES), "content differs"
        uploads = self.s3.list_multipart_uploads(Bucket=BUCKET, Prefix=k).get("Uploads", [])
        assert uid not in [u["UploadId"] for u in uploads], f"upload still listed after complete: {uploads}"

    def upload_part_copy(self):
        src, dst = self.key("upc-src.bin"), self.key("upc-dst.bin")
        body = bytes(range(256)) * (40 << 10) + b"tail"  # 10 MiB + 4 B
        self.put(src, body)
        uid = self.s3.create_multipart_upload(Bucket=BUCKET, Key=dst)["UploadId"]
        parts, start = [], 0
        for i, end in enumerate([5 << 20, len(body)], start=1):
            r = self.s3.upload_part_copy(
                Bucket=BUCKET,
                Key=dst,
                PartNumber=i,
                UploadId=uid,
                CopySource={"Bucket": BUCKET, "Key": src},
                CopySourceRange=f"bytes={start}-{end - 1}",
            )
            want = '"%s"' % hashlib.md5(body[start:end]).hexdigest()
            assert r["CopyPartResult"]["ETag"] == want, f"part {i} ETag {r['CopyPartResult']['ETag']}, expected {want}"
            parts.append({"PartNumber": i, "ETag": r["CopyPartResult"]["ETag"]})
            start = end
        self.s3.complete_multipart_upload(Bucket=BUCKET, Key=dst, UploadId=uid, MultipartUpload={"Parts": parts})
        assert self.get(dst) == body, "copied content differs"

    def multipart_abort(self):
        k = self.key("aborted.bin")
        uid = self.s3.create_multipart_upload(Bucket=BUCKET, Key=k)["UploadId"]
        self.s3.upload_part(Bucket=BUCKET, Key=k, PartNumber=1, UploadId=uid, Body=b"y" * (5 << 20))
        r = self.s3.abort_multipart_upload(Bucket=BUCKET, Key=k, UploadId=uid)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 204, f"abort HTTP {r['ResponseMetadata']['HTTPStatusCode']}"
        assert self.keys(k) == [], f"listed after abort: {self.keys(k)}"
        uploads = self.s3.list_multipart_uploads(Bucket=BUCKET, Prefix=k).get("Uploads", [])
        assert uid not in [u["UploadId"] for u in uploads], f"upload still listed after abort: {uploads}"
        self.expect_client_error(lambda: self.s3.list_parts(Bucket=BUCKET, Key=k, UploadId=uid), {"NoSuchUpload"}, 404)

    def presigned_get(self):
        k = self.key("presigned-get.txt")
        self.put(k, b"presigned body")
        url = self.s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": k}, ExpiresIn=60)
        with urllib.request.urlopen(url, timeout=30) as r:
            assert r.status == 200, f"HTTP {r.status}"
            assert r.read() == b"presigned body"

    def presigned_put(self):
        k = self.key("presigned-put.txt")
        url = self.s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": k}, ExpiresIn=60)
        # An explicit type: urllib would otherwise send application/x-www-form-urlencoded.
        req = urllib.request.Request(
            url, data=b"uploaded without credentials", method="PUT", headers={"Content-Type": "application/octet-stream"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200, f"HTTP {r.status}"
        assert self.get(k) == b"uploaded without credentials"

    def presigned_expired(self):
        k = self.key("presigned-expired.txt")
        self.put(k, b"too late")
        url = self.s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": k}, ExpiresIn=1)
        time.sleep(2)
        try:
            urllib.request.urlopen(url, timeout=30).read()
        except urllib.error.HTTPError as e:
            assert e.code == 403, f"HTTP {e.code}: {e.read()[:500]!r}"
            return
        raise AssertionError("expired presigned URL was accepted")

    def wrong_secret(self):
        bad = self.client(self.args.access_key, self.args.secret + "-wrong")
        self.expect_client_error(lambda: bad.list_objects_v2(Bucket=BUCKET, Prefix=self.base + "/"), {"SignatureDoesNotMatch"}, 403)
        k = self.key("never.txt")
        self.expect_client_error(lambda: bad.put_object(Bucket=BUCKET, Key=k, Body=b"no"), {"SignatureDoesNotMatch"}, 403)
        assert self.keys(k) == [], "object written with a wrong secret"

    def delimiter_folders(self):
        t = self.key("tree/")
        self.put(t + "top.txt", b"top")
        self.put(t + "a/b/c.txt", b"deep")  # creates the folders a and a/b
        self.put(t + "empty/", b"")  # a key ending in / makes a folder
        r = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=t, Delimiter="/")
        prefixes = sorted(p["Prefix"] for p in r.get("CommonPrefixes", []))
        keys = sorted(o["Key"] for o in r.get("Contents", []))
        assert prefixes == [t + "a/", t + "empty/"], f"CommonPrefixes {prefixes}"
        assert keys == [t + "top.txt"], f"Contents {keys}"
        r = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=t + "a/", Delimiter="/")
        prefixes = sorted(p["Prefix"] for p in r.get("CommonPrefixes", []))
        keys = [o["Key"] for o in r.get("Contents", []) if o["Key"] != t + "a/"]
        assert prefixes == [t + "a/b/"], f"CommonPrefixes under a/: {prefixes}"
        assert keys == [], f"Contents under a/: {keys}"
        r = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=t + "a/b/", Delimiter="/")
        assert [o["Key"] for o in r.get("Contents", []) if o["Key"] != t + "a/b/"] == [t + "a/b/c.txt"], r.get("Contents")
        # The workspaces are the bucket's top-level folders.
        r = self.s3.list_objects_v2(Bucket=BUCKET, Delimiter="/")
        top = [p["Prefix"] for p in r.get("CommonPrefixes", [])]
        assert "personal-files/" in top and "common-files/" in top, f"top-level CommonPrefixes {top}"

    def _page_keys(self):
        p = self.key("page/")
        want = [f"{p}k{i}" for i in range(7)]
        for k in want:
            self.put(k, b"p")
        return p, want

    def pagination_v2(self):
        p, want = self._page_keys()
        seen, token, pages = [], None, 0
        while True:
            kw = {"ContinuationToken": token} if token else {}
            r = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=p, MaxKeys=2, **kw)
            page = [o["Key"] for o in r.get("Contents", [])]
            assert len(page) <= 2, f"page of {len(page)} with MaxKeys=2"
            assert r["KeyCount"] == len(page), f"KeyCount {r['KeyCount']} for {len(page)} keys"
            seen += page
            pages += 1
            assert pages <= 10, f"more than 10 pages: {seen}"
            if not r["IsTruncated"]:
                break
            token = r["NextContinuationToken"]
        assert seen == want, f"walked {seen}"
        r = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=p, StartAfter=p + "k3")
        assert [o["Key"] for o in r.get("Contents", [])] == want[4:], f"StartAfter: {r.get('Contents')}"

    def pagination_v1(self):
        p, want = self._page_keys()
        seen, marker, pages = [], "", 0
        while True:
            r = self.s3.list_objects(Bucket=BUCKET, Prefix=p, MaxKeys=3, Marker=marker)
            page = [o["Key"] for o in r.get("Contents", [])]
            assert len(page) <= 3, f"page of {len(page)} with MaxKeys=3"
            seen += page
            pages += 1
            assert pages <= 10, f"more than 10 pages: {seen}"
            if not r["IsTruncated"]:
                break
            marker = r.get("NextMarker") or page[-1]
        assert seen == want, f"walked {seen}"

    def list_versions(self):
        k = self.key("versioned.txt")
        self.put(k, b"v")
        r = self.s3.list_object_versions(Bucket=BUCKET, Prefix=k)
        versions = r.get("Versions", [])
        assert [v["Key"] for v in versions] == [k], f"Versions {versions}"
        assert versions[0]["IsLatest"] and versions[0]["Size"] == 1, f"Versions {versions}"

    def smoke_put_get_list_delete(self):
        self.put_get_list()
        self.delete()


def main():
    global BUCKET
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--access-key", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--label", default="PAT")
    ap.add_argument("--mode", choices=["full", "smoke"], default="full")
    ap.add_argument("--prefix", default="personal-files/boto")
    ap.add_argument("--bucket", default=BUCKET)
    ap.add_argument("--skip", default="", type=lambda s: {x for x in s.split(",") if x})
    args = ap.parse_args()
    BUCKET = args.bucket
    c = Checks(args)
    if args.mode == "full":
        checks = [
            ("ListBuckets shows io", c.list_buckets),
            ("HeadBucket io", c.head_bucket),
            ("put/get/list", c.put_get_list),
            ("user metadata round trip (head_object)", c.user_metadata),
            ("ranged get", c.range_get),
            ("copy (COPY and REPLACE metadata)", c.copy),
            ("copy across workspaces", c.copy_across_workspaces),
            ("delete", c.delete),
            ("DeleteObjects", c.delete_objects),
            ("multipart 5 MiB + 5 MiB + 1 B", c.multipart),
            ("multipart abort leaves nothing", c.multipart_abort),
            ("UploadPartCopy with ranges", c.upload_part_copy),
            ("presigned GET without credentials", c.presigned_get),
            ("presigned PUT without credentials", c.presigned_put),
            ("expired presigned URL refused", c.presigned_expired),
            ("wrong secret rejected", c.wrong_secret),
            ("Delimiter=/ shows folders as CommonPrefixes", c.delimiter_folders),
            ("ListObjectsV2 MaxKeys=2 pages, StartAfter", c.pagination_v2),
            ("ListObjects (v1) Marker pages", c.pagination_v1),
            ("ListObjectVersions", c.list_versions),
        ]
    else:
        checks = [
            ("ListBuckets shows io", c.list_buckets),
            ("put/get/list/delete", c.smoke_put_get_list_delete),
            ("presigned GET without credentials", c.presigned_get),
            ("wrong secret rejected", c.wrong_secret),
        ]
    names = {n for n, _ in checks}
    unknown = args.skip - names
    if unknown:
        sys.exit(f"--skip: no such check {sorted(unknown)}; checks are {sorted(names)}")
    for name, fn in checks:
        c.run(name, fn)
    print(f"RESULT {c.passed} {c.failed}", flush=True)
    sys.exit(1 if c.failed else 0)


if __name__ == "__main__":
    main()
