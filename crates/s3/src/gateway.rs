//! The S3 operations on the tree: the bucket, objects, listings; multipart in `multipart`.
//!
//! Every operation takes the `Principal` that `auth::Access` put in the request and calls
//! `files::Tree`, which decides permissions; nothing here grants or refuses on its own except
//! the shape of keys.

use std::collections::BTreeMap;
use std::io;

use futures_util::StreamExt;
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};

use super::auth::principal;
use super::list::{self, MAX_KEYS, Query};
use super::{BUCKET, multipart, s3_error};
use cells_core::SharedApp;
use cells_core::auth::principal::Principal;
use cells_core::error::Error;
use cells_core::files::blob::ByteStream;
use cells_core::files::path::TreePath;
use cells_core::files::{Entry, Write};

pub struct Gateway {
    pub(super) app: SharedApp,
}

impl Gateway {
    pub fn new(app: SharedApp) -> Gateway {
        Gateway { app }
    }
}

/// What S3 keeps with an object besides its bytes, stored as the node's `meta` JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ObjectMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, String>,
}

impl ObjectMeta {
    pub fn new(content_type: Option<String>, user: Option<Metadata>) -> ObjectMeta {
        ObjectMeta {
            content_type,
            user: user.unwrap_or_default().into_iter().collect(),
        }
    }

    pub fn parse(json: Option<&str>) -> ObjectMeta {
        json.and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default()
    }

    /// `None` when there is nothing to keep.
    pub fn to_json(&self) -> Option<String> {
        if self.content_type.is_none() && self.user.is_empty() {
            return None;
        }
        serde_json::to_string(self).ok()
    }

    fn user_metadata(&self) -> Option<Metadata> {
        (!self.user.is_empty()).then(|| self.user.clone().into_iter().collect())
    }
}

/// The whole of user metadata is limited to 2 KiB, as in S3.
const MAX_USER_METADATA: usize = 2048;

pub fn check_metadata(user: Option<&Metadata>) -> S3Result<()> {
    let size: usize = user
        .map(|m| m.iter().map(|(k, v)| k.len() + v.len()).sum())
        .unwrap_or(0);
    if size > MAX_USER_METADATA {
        return Err(s3_error!(
            MetadataTooLarge,
            "user metadata is limited to {MAX_USER_METADATA} bytes"
        ));
    }
    Ok(())
}

/// A key as a tree path, and whether it names a folder (`a/b/`).
pub fn key_path(key: &str) -> S3Result<(TreePath, bool)> {
    let folder = key.ends_with('/');
    let inner = key.strip_suffix('/').unwrap_or(key);
    if inner.is_empty() || inner.starts_with('/') || inner.contains("//") {
        return Err(s3_error!(
            InvalidArgument,
            "keys are <workspace>/<path> (personal-files/… or a workspace slug, such as common-files/…), without empty segments"
        ));
    }
    match TreePath::parse(inner) {
        Ok(path) => Ok((path, folder)),
        Err(Error::NotFound(message)) => Err(S3Error::with_message(S3ErrorCode::NoSuchKey, message)),
        Err(other) => Err(s3_error(other)),
    }
}

pub fn timestamp(seconds: i64) -> Timestamp {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .into()
}

fn seconds(at: &Timestamp) -> i64 {
    time::OffsetDateTime::from(at.clone()).unix_timestamp()
}

pub fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_string())
}

fn etag_matches(condition: &ETagCondition, current: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(tag) => tag.value() == current,
    }
}

/// Preconditions of GET and HEAD (RFC 9110 §13.2.2 order): If-Match, else
/// If-Unmodified-Since (412); then If-None-Match, else If-Modified-Since (304).
fn check_preconditions(
    entry: &Entry,
    if_match: Option<&ETagCondition>,
    if_unmodified_since: Option<&Timestamp>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let node = &entry.node();
    let failed = match (if_match, if_unmodified_since) {
        (Some(condition), _) => !etag_matches(condition, &node.etag),
        (None, Some(since)) => node.mtime > seconds(since),
        (None, None) => false,
    };
    if failed {
        return Err(s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        ));
    }
    let not_modified = match (if_none_match, if_modified_since) {
        (Some(condition), _) => etag_matches(condition, &node.etag),
        (None, Some(since)) => node.mtime <= seconds(since),
        (None, None) => false,
    };
    if not_modified {
        return Err(S3Error::new(S3ErrorCode::NotModified));
    }
    Ok(())
}

/// An upload body as the blob store reads it. Body errors (a broken connection, a failed
/// checksum or chunk signature) become `InvalidData`, reported as the client's fault.
pub fn upload_body(body: Option<StreamingBlob>) -> ByteStream {
    match body {
        Some(blob) => Box::pin(blob.map(|chunk| chunk.map_err(cells_core::files::body_error))),
        None => Box::pin(futures_util::stream::empty()),
    }
}

/// `Content-MD5` (base64) as lowercase hex, checked for shape.
pub fn content_md5(value: Option<&str>) -> S3Result<Option<String>> {
    use base64::Engine;
    let Some(value) = value else {
        return Ok(None);
    };
    match base64::engine::general_purpose::STANDARD.decode(value.trim()) {
        Ok(bytes) if bytes.len() == 16 => Ok(Some(hex::encode(bytes))),
        _ => Err(s3_error!(
            InvalidDigest,
            "Content-MD5 is not the base64 of 16 bytes"
        )),
    }
}

/// Our error for a write, with `Content-MD5` mismatches as `BadDigest`.
pub fn write_error(error: Error) -> S3Error {
    match error {
        Error::Invalid { field, .. } if field == "Content-MD5" => s3_error!(
            BadDigest,
            "the Content-MD5 you specified did not match what we received"
        ),
        other => s3_error(other),
    }
}

impl Gateway {
    /// `io`, or its alias (`s3-bucket-alias`, `cells` by default): the same tree.
    pub fn check_bucket(&self, bucket: &str) -> S3Result<()> {
        if super::is_bucket(&self.app, bucket) {
            Ok(())
        } else {
            Err(s3_error!(
                NoSuchBucket,
                "the buckets are {BUCKET} and {}, the same tree; keys are <workspace>/<path>",
                self.app.config.s3_bucket_alias
            ))
        }
    }

    /// The file at `key` that `principal` may read, or the folder a `…/` key names.
    pub(super) async fn object(
        &self,
        principal: &Principal,
        bucket: &str,
        key: &str,
    ) -> S3Result<(Entry, bool)> {
        self.check_bucket(bucket)?;
        let (path, folder) = key_path(key)?;
        let (entry, readable) = self
            .app
            .tree
            .stat_access(principal, &path)
            .await
            .map_err(s3_error)?;
        // `a` and `a/` are different keys: a folder is only `a/`, a file only `a`.
        if entry.node().is_collection() != folder {
            return Err(s3_error!(NoSuchKey, "The specified key does not exist."));
        }
        if !folder && !readable {
            return Err(s3_error!(AccessDenied, "this credential may not read {key}"));
        }
        Ok((entry, folder))
    }

    async fn page(&self, principal: &Principal, query: &Query<'_>) -> S3Result<list::Page> {
        list::list(&self.app.tree, principal, query)
            .await
            .map_err(s3_error)
    }

    /// The steps every listing shares (ListObjects, V2, ListObjectVersions): the bucket and
    /// the arguments checked, then one page of keys after `after`.
    async fn listing(&self, principal: &Principal, request: Listing<'_>) -> S3Result<Listed> {
        self.check_bucket(request.bucket)?;
        let encode = encoder(request.encoding)?;
        let prefix = request.prefix.unwrap_or_default().to_string();
        let max_keys = max_keys(request.max_keys)?;
        let query = Query {
            prefix: &prefix,
            delimiter: request.delimiter,
            after: request.after,
            max_keys,
        };
        let page = self.page(principal, &query).await?;
        Ok(Listed {
            page,
            encode,
            prefix,
            max_keys,
        })
    }
}

/// What a listing request asks.
struct Listing<'a> {
    bucket: &'a str,
    encoding: Option<&'a EncodingType>,
    prefix: Option<&'a str>,
    delimiter: Option<&'a str>,
    after: Option<&'a str>,
    max_keys: Option<i32>,
}

/// One page of a listing, with the encoding its keys are written in.
struct Listed {
    page: list::Page,
    encode: fn(&str) -> String,
    prefix: String,
    max_keys: usize,
}

fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_KEYS),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok((n as usize).min(MAX_KEYS)),
    }
}

fn encoder(encoding: Option<&EncodingType>) -> S3Result<fn(&str) -> String> {
    match encoding.map(|e| e.as_str()) {
        None => Ok(str::to_string),
        Some("url") => Ok(list::url_encode),
        Some(other) => Err(s3_error!(InvalidArgument, "unknown encoding-type {other:?}")),
    }
}

fn objects(page: &list::Page, encode: fn(&str) -> String) -> (Vec<Object>, Vec<CommonPrefix>) {
    let objects = page
        .objects
        .iter()
        .map(|item| Object {
            key: Some(encode(&item.key)),
            size: Some(item.size),
            e_tag: Some(etag(&item.etag)),
            last_modified: Some(timestamp(item.mtime)),
            storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
            ..Default::default()
        })
        .collect();
    let prefixes = page
        .prefixes
        .iter()
        .map(|prefix| CommonPrefix {
            prefix: Some(encode(prefix)),
        })
        .collect();
    (objects, prefixes)
}

/// Continuation tokens are opaque to clients: the last key, base64url.
fn continuation(key: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn resume_after(token: &str) -> S3Result<String> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "the continuation token is not one of ours"))
}

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let principal = principal(&req)?;
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(
                [BUCKET, &self.app.config.s3_bucket_alias]
                    .into_iter()
                    .map(|name| Bucket {
                        name: Some(name.into()),
                        creation_date: Some(timestamp(self.app.started_at)),
                        bucket_region: Some(super::REGION.into()),
                    })
                    .collect(),
            ),
            owner: Some(Owner {
                display_name: Some(principal.login().to_string()),
                id: Some(principal.user_id().to_string()),
            }),
            ..Default::default()
        }))
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.check_bucket(&req.input.bucket)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(super::REGION.into()),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.check_bucket(&req.input.bucket)?;
        // An empty constraint means us-east-1.
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        if super::is_bucket(&self.app, &req.input.bucket) {
            return Err(s3_error!(
                BucketAlreadyOwnedByYou,
                "the bucket {} always exists",
                req.input.bucket
            ));
        }
        Err(s3_error!(
            AccessDenied,
            "cells has one bucket, {BUCKET}; make folders inside it instead"
        ))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.check_bucket(&req.input.bucket)?;
        Err(s3_error!(
            AccessDenied,
            "the bucket {} cannot be deleted",
            req.input.bucket
        ))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let principal = principal(&req)?;
        let input = &req.input;
        let after = match (&input.continuation_token, &input.start_after) {
            (Some(token), _) => Some(resume_after(token)?),
            (None, Some(start)) => Some(start.clone()),
            (None, None) => None,
        };
        let Listed {
            page,
            encode,
            prefix,
            max_keys,
        } = self
            .listing(
                principal,
                Listing {
                    bucket: &input.bucket,
                    encoding: input.encoding_type.as_ref(),
                    prefix: input.prefix.as_deref(),
                    delimiter: input.delimiter.as_deref(),
                    after: after.as_deref(),
                    max_keys: input.max_keys,
                },
            )
            .await?;
        let (contents, common_prefixes) = objects(&page, encode);
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket.clone()),
            prefix: Some(encode(&prefix)),
            delimiter: input.delimiter.as_deref().map(encode),
            max_keys: Some(max_keys as i32),
            key_count: Some((contents.len() + common_prefixes.len()) as i32),
            continuation_token: input.continuation_token.clone(),
            next_continuation_token: page.next.as_deref().map(continuation),
            start_after: input.start_after.as_deref().map(encode),
            is_truncated: Some(page.truncated),
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            encoding_type: input.encoding_type.clone(),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let principal = principal(&req)?;
        let input = &req.input;
        let Listed {
            page,
            encode,
            prefix,
            max_keys,
        } = self
            .listing(
                principal,
                Listing {
                    bucket: &input.bucket,
                    encoding: input.encoding_type.as_ref(),
                    prefix: input.prefix.as_deref(),
                    delimiter: input.delimiter.as_deref(),
                    after: input.marker.as_deref(),
                    max_keys: input.max_keys,
                },
            )
            .await?;
        let (contents, common_prefixes) = objects(&page, encode);
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket.clone()),
            prefix: Some(encode(&prefix)),
            marker: input.marker.as_deref().map(encode),
            delimiter: input.delimiter.as_deref().map(encode),
            max_keys: Some(max_keys as i32),
            is_truncated: Some(page.truncated),
            // S3 gives NextMarker only with a delimiter; clients otherwise use the last key.
            next_marker: page.next.as_deref().map(encode),
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            encoding_type: input.encoding_type.clone(),
            ..Default::default()
        }))
    }

    /// Versioning is not kept: every object has one version, `null`, the latest.
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let principal = principal(&req)?;
        let input = &req.input;
        let Listed {
            page,
            encode,
            prefix,
            max_keys,
        } = self
            .listing(
                principal,
                Listing {
                    bucket: &input.bucket,
                    encoding: input.encoding_type.as_ref(),
                    prefix: input.prefix.as_deref(),
                    delimiter: input.delimiter.as_deref(),
                    after: input.key_marker.as_deref(),
                    max_keys: input.max_keys,
                },
            )
            .await?;
        let versions = page
            .objects
            .iter()
            .map(|item| ObjectVersion {
                key: Some(encode(&item.key)),
                size: Some(item.size),
                e_tag: Some(etag(&item.etag)),
                last_modified: Some(timestamp(item.mtime)),
                version_id: Some("null".into()),
                is_latest: Some(true),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                ..Default::default()
            })
            .collect();
        let (_, common_prefixes) = objects(&page, encode);
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket.clone()),
            prefix: Some(encode(&prefix)),
            delimiter: input.delimiter.as_deref().map(encode),
            key_marker: input.key_marker.as_deref().map(encode),
            max_keys: Some(max_keys as i32),
            is_truncated: Some(page.truncated),
            next_key_marker: page.next.as_deref().map(encode),
            next_version_id_marker: page.next.as_ref().map(|_| "null".into()),
            versions: Some(versions),
            common_prefixes: Some(common_prefixes),
            encoding_type: input.encoding_type.clone(),
            ..Default::default()
        }))
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let principal = principal(&req)?;
        let input = &req.input;
        check_version(input.version_id.as_deref())?;
        let (entry, folder) = self.object(principal, &input.bucket, &input.key).await?;
        check_preconditions(
            &entry,
            input.if_match.as_ref(),
            input.if_unmodified_since.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
        )?;
        let meta = ObjectMeta::parse(entry.node().meta.as_deref());
        let size = if folder { 0 } else { entry.node().size };
        let (content_length, content_range) = match &input.range {
            Some(range) if !folder => {
                let span = range
                    .check(size as u64)
                    .map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable"))?;
                (
                    (span.end - span.start) as i64,
                    Some(format!(
                        "bytes {}-{}/{size}",
                        span.start,
                        span.end.saturating_sub(1)
                    )),
                )
            }
            _ => (size, None),
        };
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(content_length),
            content_range,
            content_type: Some(content_type(&meta, folder)),
            e_tag: Some(etag(&entry.node().etag)),
            last_modified: Some(timestamp(entry.node().mtime)),
            accept_ranges: Some("bytes".into()),
            metadata: meta.user_metadata(),
            ..Default::default()
        }))
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let principal = principal(&req)?;
        let input = &req.input;
        check_version(input.version_id.as_deref())?;
        let (entry, folder) = self.object(principal, &input.bucket, &input.key).await?;
        check_preconditions(
            &entry,
            input.if_match.as_ref(),
            input.if_unmodified_since.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
        )?;
        let meta = ObjectMeta::parse(entry.node().meta.as_deref());
        let size = if folder {
            0
        } else {
            entry.node().size.max(0) as u64
        };
        let (start, length, content_range) = match &input.range {
            Some(range) => {
                let span = range
                    .check(size)
                    .map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable"))?;
                let end = span.end.saturating_sub(1);
                (
                    span.start,
                    span.end - span.start,
                    Some(format!("bytes {}-{end}/{size}", span.start)),
                )
            }
            None => (0, size, None),
        };
        let body = match &entry.node().blob_id {
            Some(_) if length > 0 => {
                let body = self
                    .app
                    .tree
                    .stream_content(entry.node(), start, length)
                    .await
                    .map_err(s3_error)?;
                StreamingBlob::wrap(body)
            }
            _ => StreamingBlob::wrap(futures_util::stream::empty::<Result<bytes::Bytes, io::Error>>()),
        };
        let content_type = input
            .response_content_type
            .clone()
            .unwrap_or_else(|| content_type(&meta, folder));
        Ok(S3Response::new(GetObjectOutput {
            body: Some(body),
            content_length: Some(length as i64),
            content_range,
            content_type: Some(content_type),
            content_disposition: input.response_content_disposition.clone(),
            cache_control: input.response_cache_control.clone(),
            content_encoding: input.response_content_encoding.clone(),
            content_language: input.response_content_language.clone(),
            e_tag: Some(etag(&entry.node().etag)),
            last_modified: Some(timestamp(entry.node().mtime)),
            accept_ranges: Some("bytes".into()),
            metadata: meta.user_metadata(),
            ..Default::default()
        }))
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let principal = principal(&req)?.clone();
        let input = req.input;
        self.check_bucket(&input.bucket)?;
        let (path, folder) = key_path(&input.key)?;
        let tree = &self.app.tree;
        if folder {
            // `a/b/` makes the folder (S3 consoles and rclone make "directories" this way).
            if input.content_length.unwrap_or(0) > 0 {
                return Err(s3_error!(
                    InvalidArgument,
                    "a key ending in / is a folder and cannot hold content"
                ));
            }
            let entry = tree
                .create_folder(&principal, &path, true)
                .await
                .map_err(s3_error)?;
            return Ok(S3Response::new(PutObjectOutput {
                e_tag: Some(etag(&entry.node().etag)),
                ..Default::default()
            }));
        }
        check_metadata(input.metadata.as_ref())?;
        if input.if_none_match.is_some() || input.if_match.is_some() {
            let current = match tree.stat(&principal, &path).await {
                Ok(entry) if !entry.node().is_collection() => Some(entry),
                Ok(_) | Err(Error::NotFound(_)) => None,
                Err(other) => return Err(s3_error(other)),
            };
            let fails_none_match = matches!((&input.if_none_match, &current), (Some(c), Some(e)) if etag_matches(c, &e.node().etag));
            let fails_match = match (&input.if_match, &current) {
                (Some(condition), Some(entry)) => !etag_matches(condition, &entry.node().etag),
                (Some(_), None) => true,
                (None, _) => false,
            };
            if fails_none_match || fails_match {
                return Err(s3_error!(
                    PreconditionFailed,
                    "At least one of the pre-conditions you specified did not hold"
                ));
            }
        }
        let meta = ObjectMeta::new(input.content_type.clone(), input.metadata.clone()).to_json();
        let options = Write {
            meta: meta.as_deref(),
            create_parents: true,
            expect_md5: content_md5(input.content_md5.as_deref())?,
            // Held in the quota before the first byte.
            size: input.content_length.and_then(|n| u64::try_from(n).ok()),
            // S3 answers a PUT with the object's MD5 as its ETag.
            ..Write::default()
        };
        let entry = tree
            .write(&principal, &path, upload_body(input.body), &options)
            .await
            .map_err(write_error)?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag(&entry.node().etag)),
            size: Some(entry.node().size),
            ..Default::default()
        }))
    }

    /// Copies within `io` never reach this: s3s refuses `io/…` as a copy source (bucket names
    /// of 3 characters or more), so `copy::CopyRoute` serves them. What arrives here names
    /// another bucket as its source.
    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        self.check_bucket(&req.input.bucket)?;
        let (source_bucket, _) = copy_source(&req.input.copy_source)?;
        self.check_bucket(source_bucket)?;
        Err(s3_error!(
            InternalError,
            "copies within {BUCKET} are served by the copy route"
        ))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let principal = principal(&req)?.clone();
        self.check_bucket(&req.input.bucket)?;
        self.delete_key(&principal, &req.input.key).await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let principal = principal(&req)?.clone();
        let input = req.input;
        self.check_bucket(&input.bucket)?;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(MalformedXML, "at most 1000 keys per request"));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for object in input.delete.objects {
            match self.delete_key(&principal, &object.key).await {
                Ok(()) if quiet => {}
                Ok(()) => deleted.push(DeletedObject {
                    key: Some(object.key),
                    ..Default::default()
                }),
                Err(error) => errors.push(s3s::dto::Error {
                    key: Some(object.key),
                    code: Some(error.code().as_str().to_string()),
                    message: error.message().map(str::to_string),
                    ..Default::default()
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create(self, req).await
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        // As for copy_object: copies from `io` are served by the copy route.
        self.check_bucket(&req.input.bucket)?;
        let (source_bucket, _) = copy_source(&req.input.copy_source)?;
        self.check_bucket(source_bucket)?;
        Err(s3_error!(
            InternalError,
            "copies within {BUCKET} are served by the copy route"
        ))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete(self, req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort(self, req).await
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(self, req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_uploads(self, req).await
    }
}

impl Gateway {
    /// DeleteObject semantics: deleting a missing key succeeds; a folder key (`a/`) removes
    /// the folder only when it is empty (its files are other keys); a file key never removes
    /// a folder of that name.
    async fn delete_key(&self, principal: &Principal, key: &str) -> S3Result<()> {
        let (path, folder) = key_path(key)?;
        let tree = &self.app.tree;
        let entry = match tree.stat(principal, &path).await {
            Ok(entry) => entry,
            // Deleting a missing key succeeds, where the caller could have written it: a
            // credential without rights there learns nothing and is refused.
            Err(Error::NotFound(_)) => {
                return match tree.can_create_at(principal, &path).await {
                    Ok(true) => Ok(()),
                    _ => Err(s3_error!(AccessDenied, "this credential may not delete {key}")),
                };
            }
            Err(other) => return Err(s3_error(other)),
        };
        if entry.node().is_collection() != folder || path.is_root() {
            return Ok(());
        }
        if folder {
            let (_, children) = tree.list(principal, &path).await.map_err(s3_error)?;
            if !children.is_empty() {
                return Ok(());
            }
        }
        match tree.delete(principal, &path).await {
            Ok(_) | Err(Error::NotFound(_)) => Ok(()),
            Err(other) => Err(s3_error(other)),
        }
    }
}

/// Versions are not kept; only the current one (`null`) can be asked for.
fn check_version(version: Option<&str>) -> S3Result<()> {
    match version {
        None | Some("null") => Ok(()),
        Some(_) => Err(s3_error!(
            NoSuchVersion,
            "versioning is not enabled; the only version is null"
        )),
    }
}

fn content_type(meta: &ObjectMeta, folder: bool) -> String {
    if folder {
        return "application/x-directory".into();
    }
    meta.content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into())
}

/// The bucket and key of `x-amz-copy-source` (which the request's signature covers).
pub fn copy_source(source: &CopySource) -> S3Result<(&str, &str)> {
    match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => {
            check_version(version_id.as_deref())?;
            Ok((bucket, key))
        }
        _ => Err(s3_error!(NotImplemented, "copy sources are bucket/key")),
    }
}

pub fn check_copy_preconditions(
    source: &Entry,
    if_match: Option<&ETagCondition>,
    if_unmodified_since: Option<&Timestamp>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
) -> S3Result<()> {
    // For copies every failed condition is 412 (not 304).
    match check_preconditions(
        source,
        if_match,
        if_unmodified_since,
        if_none_match,
        if_modified_since,
    ) {
        Err(error) if *error.code() == S3ErrorCode::NotModified => Err(s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        )),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_tree_paths() {
        let (path, folder) = key_path("personal-files/a/b.txt").unwrap();
        assert_eq!(path.to_string(), "personal-files/a/b.txt");
        assert!(!folder);
        let (path, folder) = key_path("common-files/dir/").unwrap();
        assert_eq!(path.to_string(), "common-files/dir");
        assert!(folder);
        for bad in [
            "",
            "/",
            "/personal-files/a",
            "personal-files//a",
            "personal-files/../x",
        ] {
            assert!(key_path(bad).is_err(), "{bad:?} must be refused");
        }
        // A first segment that could be a workspace's slug is for the tree to look up; one
        // that could not is no key of anyone's.
        assert!(key_path("elsewhere/a").is_ok());
        assert_eq!(
            *key_path("Elsewhere/a").unwrap_err().code(),
            S3ErrorCode::NoSuchKey
        );
    }

    #[test]
    fn metadata_round_trips_and_empty_is_none() {
        assert_eq!(ObjectMeta::default().to_json(), None);
        let mut user = Metadata::new();
        user.insert("color".into(), "blue".into());
        let json = ObjectMeta::new(Some("text/plain".into()), Some(user))
            .to_json()
            .unwrap();
        let back = ObjectMeta::parse(Some(&json));
        assert_eq!(back.content_type.as_deref(), Some("text/plain"));
        assert_eq!(back.user.get("color").map(String::as_str), Some("blue"));
        assert!(ObjectMeta::parse(Some("not json")).user.is_empty());
    }

    #[test]
    fn content_md5_must_be_16_bytes_of_base64() {
        assert_eq!(
            content_md5(Some("XUFAKrxLKna5cZ2REBfFkg==")).unwrap().as_deref(),
            Some("5d41402abc4b2a76b9719d911017c592")
        );
        assert!(content_md5(Some("abc")).is_err());
        assert_eq!(content_md5(None).unwrap(), None);
    }
}
