#!/usr/bin/env python3
"""boto3 side of bench/s3.sh: one S3 client, the same for every server.

The endpoint and the credentials come from the environment, never from the command line:
S3_ENDPOINT (http://127.0.0.1:PORT), S3_ACCESS_KEY, S3_SECRET_KEY, S3_BUCKET (default io).
Path-style addressing, SigV4, region us-east-1, boto3's defaults otherwise.

Subcommands (times are printed on stdout, in seconds; errors go to stderr, exit status 1):
  ready                         list_buckets must list S3_BUCKET
  put FILE KEY                  put_object of FILE, then get_object must return the same bytes
  presign get|put KEY           a presigned URL (ExpiresIn 3600) for get_object / put_object
  presign-many PREFIX COUNT     COUNT presigned put_object URLs, for PREFIX000001.bin...
  fill COUNT PREFIX THREADS     put_object of COUNT tiny objects PREFIXf000001.txt... ("entry N\\n")
                                from THREADS threads; prints the seconds
  upload FILE KEY               upload_file (multipart, 8 MiB parts, 10 threads); prints the seconds
  download KEY FILE             download_file (ranged GETs, 10 threads); prints the seconds
  list PREFIX COUNT RUNS        RUNS full ListObjectsV2 listings of PREFIX (MaxKeys 1000, continuation
                                tokens); each must give COUNT sorted, distinct keys; prints
                                "median pages t1 t2 ..."
"""

import concurrent.futures
import os
import statistics
import sys
import threading
import time

import boto3
import botocore
from botocore.config import Config

BUCKET = os.environ.get("S3_BUCKET", "io")


def client(max_pool=10):
    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT"],
        aws_access_key_id=os.environ["S3_ACCESS_KEY"],
        aws_secret_access_key=os.environ["S3_SECRET_KEY"],
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            max_pool_connections=max_pool,
            retries={"mode": "standard", "max_attempts": 1},  # no retry hides a failure
        ),
    )


def describe(err):
    """One line with what the server answered, for the report."""
    if isinstance(err, botocore.exceptions.ClientError):
        meta = err.response.get("ResponseMetadata", {})
        e = err.response.get("Error", {})
        return "{}: HTTP {} {} {!r}".format(
            err.operation_name, meta.get("HTTPStatusCode"), e.get("Code"), e.get("Message")
        )
    return "{}: {}".format(type(err).__name__, err)


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def cmd_ready(s3):
    names = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    if BUCKET not in names:
        fail("list_buckets: no bucket {!r} in {}".format(BUCKET, names))
    print(" ".join(names))


def cmd_put(s3, path, key):
    with open(path, "rb") as f:
        data = f.read()
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    got = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    if got != data:
        fail("get_object {}: {} bytes that differ from the {} put".format(key, len(got), len(data)))


def cmd_presign(s3, method, key):
    op = {"get": "get_object", "put": "put_object"}[method]
    print(s3.generate_presigned_url(op, Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=3600))


def cmd_presign_many(s3, prefix, count):
    for i in range(1, count + 1):
        key = "{}{:06d}.bin".format(prefix, i)
        print(s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=3600))


def cmd_fill(count, prefix, threads):
    s3 = client(max_pool=threads)
    errors = []
    lock = threading.Lock()

    def put(i):
        try:
            s3.put_object(Bucket=BUCKET, Key="{}f{:06d}.txt".format(prefix, i), Body=b"entry %d\n" % i)
        except Exception as err:  # noqa: BLE001 - every failure is reported
            with lock:
                errors.append("f{:06d}.txt: {}".format(i, describe(err)))

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, range(1, count + 1)))
    seconds = time.perf_counter() - t0
    if errors:
        fail("{} of {} put_object calls failed; first: {}".format(len(errors), count, errors[0]))
    print("{:.3f}".format(seconds))


def cmd_upload(s3, path, key):
    t0 = time.perf_counter()
    s3.upload_file(path, BUCKET, key)
    seconds = time.perf_counter() - t0
    size = s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    if size != os.path.getsize(path):
        fail("head_object {}: ContentLength {}, uploaded {}".format(key, size, os.path.getsize(path)))
    print("{:.3f}".format(seconds))


def cmd_download(s3, key, path):
    t0 = time.perf_counter()
    s3.download_file(BUCKET, key, path)
    print("{:.3f}".format(time.perf_counter() - t0))


def cmd_list(s3, prefix, count, runs):
    times = []
    pages = 0
    for _ in range(runs):
        keys = []
        pages = 0
        kwargs = {"Bucket": BUCKET, "Prefix": prefix, "MaxKeys": 1000}
        t0 = time.perf_counter()
        while True:
            r = s3.list_objects_v2(**kwargs)
            pages += 1
            keys.extend(o["Key"] for o in r.get("Contents", []))
            if not r.get("IsTruncated"):
                break
            token = r.get("NextContinuationToken")
            if not token:
                fail("list_objects_v2: IsTruncated without NextContinuationToken (page {})".format(pages))
            kwargs["ContinuationToken"] = token
            if pages > count + 10:
                fail("list_objects_v2: more than {} pages, giving up".format(pages))
        times.append(time.perf_counter() - t0)
        if len(keys) != count or len(set(keys)) != count:
            fail("list_objects_v2 {}: {} keys ({} distinct) in {} pages, expected {}".format(
                prefix, len(keys), len(set(keys)), pages, count))
        if keys != sorted(keys):
            fail("list_objects_v2 {}: the keys are not in ascending order".format(prefix))
    print("{:.4f} {} {}".format(statistics.median(times), pages, " ".join("{:.4f}".format(t) for t in times)))


def main():
    args = sys.argv[1:]
    if not args:
        fail(__doc__)
    cmd, rest = args[0], args[1:]
    try:
        if cmd == "ready":
            cmd_ready(client())
        elif cmd == "put":
            cmd_put(client(), rest[0], rest[1])
        elif cmd == "presign":
            cmd_presign(client(), rest[0], rest[1])
        elif cmd == "presign-many":
            cmd_presign_many(client(), rest[0], int(rest[1]))
        elif cmd == "fill":
            cmd_fill(int(rest[0]), rest[1], int(rest[2]))
        elif cmd == "upload":
            cmd_upload(client(), rest[0], rest[1])
        elif cmd == "download":
            cmd_download(client(), rest[0], rest[1])
        elif cmd == "list":
            cmd_list(client(), rest[0], int(rest[1]), int(rest[2]))
        else:
            fail("unknown subcommand {!r}\n{}".format(cmd, __doc__))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
        fail("{} {}: {}".format(cmd, " ".join(rest), describe(err)))
    except boto3.exceptions.S3UploadFailedError as err:
        fail("{} {}: {}".format(cmd, " ".join(rest), err))


if __name__ == "__main__":
    main()
