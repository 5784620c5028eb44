//! S3 multipart uploads: parts are blobs of their own, invisible in the tree; completing
//! joins them into one new blob (hard links to the parts' files, no byte copied:
//! `BlobStore::concat`) and commits it like any write, with the multipart
//! ETag (MD5 of the parts' MD5s, `-N`). Aborted uploads, and uploads never completed within
//! `UPLOAD_TTL`, are deleted with their parts (`expire`).

use md5::Digest;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use uuid::Uuid;

use super::BUCKET;
use super::auth::principal;
use super::gateway::{
    Gateway, ObjectMeta, check_metadata, content_md5, etag, key_path, timestamp, upload_body, write_error,
};
use super::s3_error;
use cells_core::SharedApp;
use cells_core::auth::principal::Principal;
use cells_core::error::Error;
use cells_core::files::blob::{Md5When, WrittenBlob};
use cells_core::files::path::TreePath;
use cells_core::files::{Entry, Write};
use cells_core::records::Upload;

/// Part numbers S3 accepts.
const PART_NUMBERS: std::ops::RangeInclusive<i32> = 1..=10_000;
/// Every part but the last must be at least this large.
const MIN_PART_SIZE: i64 = 5 << 20;
/// Multipart uploads one user may have in progress: each holds rows and part blobs until it is
/// completed, aborted or expired.
pub const MAX_OPEN_UPLOADS: i64 = 1000;

/// An upload not completed within this time is deleted with its parts.
pub const UPLOAD_TTL: i64 = 24 * 3600;

fn no_such_upload() -> s3s::S3Error {
    s3_error!(
        NoSuchUpload,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
    )
}

/// Check that `principal` may write `key` (creating folders on the way), without creating
/// anything.
async fn check_writable(gateway: &Gateway, principal: &Principal, key: &str) -> S3Result<TreePath> {
    let (path, folder) = key_path(key)?;
    if folder {
        return Err(s3_error!(
            InvalidArgument,
            "a key ending in / is a folder and cannot hold content"
        ));
    }
    match gateway.app.tree.can_create_at(principal, &path).await {
        Ok(true) => Ok(path),
        Ok(false) => Err(s3_error!(AccessDenied, "this credential may not write {key}")),
        Err(error) => Err(s3_error(error)),
    }
}

/// The upload `id` of this caller for `key`; anyone else's is "no such upload".
async fn find(
    gateway: &Gateway,
    principal: &Principal,
    bucket: &str,
    key: &str,
    id: &str,
) -> S3Result<Upload> {
    gateway.check_bucket(bucket)?;
    let id = Uuid::parse_str(id).map_err(|_| no_such_upload())?;
    let upload = gateway
        .app
        .uploads()
        .find(id)
        .await
        .map_err(s3_error)?
        .ok_or_else(no_such_upload)?;
    if upload.user_id != principal.user_id() || upload.object_key != key {
        return Err(no_such_upload());
    }
    Ok(upload)
}

pub async fn create(
    gateway: &Gateway,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let principal = principal(&req)?;
    let input = &req.input;
    gateway.check_bucket(&input.bucket)?;
    check_metadata(input.metadata.as_ref())?;
    check_writable(gateway, principal, &input.key).await?;
    let meta = ObjectMeta::new(input.content_type.clone(), input.metadata.clone()).to_json();
    let upload = gateway
        .app
        .uploads()
        .create(principal.user_id(), &input.key, meta.as_deref(), MAX_OPEN_UPLOADS)
        .await
        .map_err(s3_error)?
        .ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "Too many multipart uploads in progress (at most 1000 per user); complete or abort some"
            )
        })?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        upload_id: Some(upload.id.to_string()),
        ..Default::default()
    }))
}

fn part_number(number: i32) -> S3Result<i64> {
    if PART_NUMBERS.contains(&number) {
        Ok(i64::from(number))
    } else {
        Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ))
    }
}

/// Record a written part blob; on any failure the blob is deleted.
async fn record_part(gateway: &Gateway, upload: &Upload, number: i64, written: &WrittenBlob) -> S3Result<()> {
    let app = &gateway.app;
    let size = i64::try_from(written.size).unwrap_or(i64::MAX);
    match app
        .uploads()
        .put_part(upload.id, number, &written.id, size, &written.md5)
        .await
    {
        Ok(replaced) => {
            if let Some(old) = replaced {
                forget(app, &[old]).await;
            }
            Ok(())
        }
        Err(error) => {
            forget(app, std::slice::from_ref(&written.id)).await;
            match error {
                Error::NotFound(_) => Err(no_such_upload()),
                other => Err(s3_error(other)),
            }
        }
    }
}

pub async fn upload_part(
    gateway: &Gateway,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let principal = principal(&req)?.clone();
    let input = req.input;
    let number = part_number(input.part_number)?;
    let upload = find(gateway, &principal, &input.bucket, &input.key, &input.upload_id).await?;
    check_writable(gateway, &principal, &input.key).await?;
    gateway.app.tree.check_space().map_err(s3_error)?;
    let expect_md5 = content_md5(input.content_md5.as_deref())?;
    let written = gateway
        .app
        .tree
        .blobs()
        .put(upload_body(input.body), Md5When::Now)
        .await
        .map_err(|e| write_error(e.into()))?;
    if let Some(expected) = expect_md5
        && expected != written.md5
    {
        forget(&gateway.app, &[written.id]).await;
        return Err(write_error(Error::invalid("Content-MD5", "mismatch")));
    }
    record_part(gateway, &upload, number, &written).await?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(etag(&written.md5)),
        ..Default::default()
    }))
}

/// `bytes=first-last` of `x-amz-copy-source-range`, within a source of `size` bytes.
fn copy_range(range: Option<&str>, size: u64) -> S3Result<(u64, u64)> {
    let Some(range) = range else {
        return Ok((0, size));
    };
    let bad = || {
        s3_error!(
            InvalidArgument,
            "x-amz-copy-source-range must be bytes=first-last within the source"
        )
    };
    let (first, last) = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let first: u64 = first.trim().parse().map_err(|_| bad())?;
    let last: u64 = last.trim().parse().map_err(|_| bad())?;
    if first > last || last >= size {
        return Err(bad());
    }
    Ok((first, last - first + 1))
}

/// UploadPartCopy: part `number` of upload `upload_id` for `key` becomes `range` of `source`
/// (already checked readable by the copy route). Returns the part's MD5 and date.
pub async fn upload_part_copy(
    app: &SharedApp,
    principal: &Principal,
    key: &str,
    upload_id: &str,
    number: i32,
    source: &Entry,
    range: Option<&str>,
) -> S3Result<(String, i64)> {
    let gateway = Gateway::new(app.clone());
    let number = part_number(number)?;
    let upload = find(&gateway, principal, BUCKET, key, upload_id).await?;
    check_writable(&gateway, principal, key).await?;
    if source.node().is_collection() {
        return Err(s3_error!(InvalidRequest, "the copy source is a folder"));
    }
    let (offset, length) = copy_range(range, source.node().size.max(0) as u64)?;
    let source = app
        .tree
        .stream_content(source.node(), offset, length)
        .await
        .map_err(s3_error)?;
    let written = app
        .tree
        .blobs()
        .put(source, Md5When::Now)
        .await
        .map_err(|e| s3_error(e.into()))?;
    record_part(&gateway, &upload, number, &written).await?;
    Ok((written.md5, cells_core::records::now()))
}

/// The S3 ETag of a multipart object: MD5 of the concatenated binary MD5s of its parts.
pub fn multipart_etag(part_md5s: &[&str]) -> String {
    let mut joined = Vec::with_capacity(part_md5s.len() * 16);
    for md5 in part_md5s {
        joined.extend(hex::decode(md5).unwrap_or_default());
    }
    let whole = md5::Md5::digest(&joined);
    format!("{}-{}", hex::encode(whole), part_md5s.len())
}

pub async fn complete(
    gateway: &Gateway,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let principal = principal(&req)?.clone();
    let input = req.input;
    let upload = find(gateway, &principal, &input.bucket, &input.key, &input.upload_id).await?;
    let path = check_writable(gateway, &principal, &input.key).await?;
    let requested = input
        .multipart_upload
        .and_then(|m| m.parts)
        .filter(|parts| !parts.is_empty())
        .ok_or_else(|| s3_error!(MalformedXML, "CompleteMultipartUpload lists no parts"))?;
    let app = &gateway.app;
    let stored = app.uploads().parts(upload.id).await.map_err(s3_error)?;
    let mut chosen = Vec::with_capacity(requested.len());
    let mut previous = 0;
    for (index, part) in requested.iter().enumerate() {
        let number = part
            .part_number
            .ok_or_else(|| s3_error!(MalformedXML, "a part has no PartNumber"))?;
        let number = part_number(number)?;
        if number <= previous {
            return Err(s3_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order. Parts must be ordered by part number."
            ));
        }
        previous = number;
        let found = stored
            .iter()
            .find(|p| p.part_number == number)
            .filter(|p| part.e_tag.as_ref().is_none_or(|tag| tag.value() == p.etag))
            .ok_or_else(|| {
                s3_error!(
                    InvalidPart,
                    "One or more of the specified parts could not be found, or its ETag did not match"
                )
            })?;
        if index + 1 < requested.len() && found.size < MIN_PART_SIZE {
            return Err(s3_error!(
                EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed size (5 MiB for every part but the last)"
            ));
        }
        chosen.push(found);
    }
    let blob_ids: Vec<String> = chosen.iter().map(|p| p.blob_id.clone()).collect();
    let md5s: Vec<&str> = chosen.iter().map(|p| p.etag.as_str()).collect();
    let object_etag = multipart_etag(&md5s);
    let (id, size) = app
        .tree
        .blobs()
        .concat(&blob_ids)
        .await
        .map_err(|e| s3_error(e.into()))?;
    let options = Write {
        meta: upload.meta.as_deref(),
        create_parents: true,
        ..Write::default()
    };
    let written = WrittenBlob {
        id,
        size,
        md5: object_etag.clone(),
        inline: None,
    };
    let entry = app
        .tree
        .commit_blob(&principal, &path, written, Some(&object_etag), &options)
        .await
        .map_err(s3_error)?;
    // The object is in place; the upload and its parts go (a concurrent completion may have
    // removed them first).
    if let Ok(parts) = app.uploads().delete(upload.id).await {
        forget(app, &parts).await;
    }
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        location: Some(format!(
            "{}/{}/{}",
            app.config.external_url,
            input.bucket,
            entry.path()
        )),
        bucket: Some(input.bucket),
        key: Some(input.key),
        e_tag: Some(etag(&entry.node().etag)),
        ..Default::default()
    }))
}

pub async fn abort(
    gateway: &Gateway,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let principal = principal(&req)?;
    let input = &req.input;
    let upload = find(gateway, principal, &input.bucket, &input.key, &input.upload_id).await?;
    let parts = match gateway.app.uploads().delete(upload.id).await {
        Ok(parts) => parts,
        Err(Error::NotFound(_)) => return Err(no_such_upload()),
        Err(other) => return Err(s3_error(other)),
    };
    forget(&gateway.app, &parts).await;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub async fn list_parts(
    gateway: &Gateway,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let principal = principal(&req)?;
    let input = &req.input;
    let upload = find(gateway, principal, &input.bucket, &input.key, &input.upload_id).await?;
    let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
    let marker = i64::from(input.part_number_marker.unwrap_or(0));
    let stored = gateway.app.uploads().parts(upload.id).await.map_err(s3_error)?;
    let after: Vec<_> = stored.into_iter().filter(|p| p.part_number > marker).collect();
    let truncated = after.len() > max;
    let page = &after[..after.len().min(max)];
    let parts = page
        .iter()
        .map(|p| Part {
            part_number: Some(p.part_number as i32),
            size: Some(p.size),
            e_tag: Some(etag(&p.etag)),
            last_modified: Some(timestamp(p.created_at)),
            ..Default::default()
        })
        .collect();
    let owner = Owner {
        display_name: Some(principal.login().to_string()),
        id: Some(principal.user_id().to_string()),
    };
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        upload_id: Some(input.upload_id.clone()),
        max_parts: Some(max as i32),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: page.last().filter(|_| truncated).map(|p| p.part_number as i32),
        is_truncated: Some(truncated),
        parts: Some(parts),
        initiator: Some(Initiator {
            display_name: owner.display_name.clone(),
            id: owner.id.clone(),
        }),
        owner: Some(owner),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        ..Default::default()
    }))
}

pub async fn list_uploads(
    gateway: &Gateway,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let principal = principal(&req)?;
    let input = &req.input;
    gateway.check_bucket(&input.bucket)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let id_marker = input.upload_id_marker.clone().unwrap_or_default();
    let mut uploads = gateway
        .app
        .uploads()
        .of_user(principal.user_id())
        .await
        .map_err(s3_error)?;
    uploads.retain(|u| u.object_key.starts_with(&prefix));
    uploads.sort_by(|a, b| {
        (a.object_key.as_bytes(), a.id.to_string()).cmp(&(b.object_key.as_bytes(), b.id.to_string()))
    });
    // After the markers: keys past key-marker, or the same key with a later upload id.
    uploads.retain(|u| {
        key_marker.is_empty()
            || u.object_key.as_str() > key_marker.as_str()
            || (u.object_key == key_marker && !id_marker.is_empty() && u.id.to_string() > id_marker)
    });
    let truncated = uploads.len() > max;
    uploads.truncate(max);
    let owner = Owner {
        display_name: Some(principal.login().to_string()),
        id: Some(principal.user_id().to_string()),
    };
    let next = uploads.last().filter(|_| truncated);
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket.clone()),
        prefix: Some(prefix.clone()),
        key_marker: input.key_marker.clone(),
        upload_id_marker: input.upload_id_marker.clone(),
        next_key_marker: next.map(|u| u.object_key.clone()),
        next_upload_id_marker: next.map(|u| u.id.to_string()),
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        uploads: Some(
            uploads
                .iter()
                .map(|u| MultipartUpload {
                    key: Some(u.object_key.clone()),
                    upload_id: Some(u.id.to_string()),
                    initiated: Some(timestamp(u.created_at)),
                    owner: Some(owner.clone()),
                    initiator: Some(Initiator {
                        display_name: owner.display_name.clone(),
                        id: owner.id.clone(),
                    }),
                    storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

async fn forget(app: &SharedApp, blobs: &[String]) {
    for blob in blobs {
        if let Err(error) = app.tree.blobs().delete(blob).await {
            tracing::warn!(%blob, %error, "could not delete an upload part");
        }
    }
}

/// Delete uploads older than `UPLOAD_TTL` with their parts (run periodically).
pub async fn expire(app: &SharedApp) -> cells_core::error::Result<usize> {
    let stale = app
        .uploads()
        .stale(cells_core::records::now() - UPLOAD_TTL)
        .await?;
    let mut count = 0;
    for id in stale {
        if let Ok(parts) = app.uploads().delete(id).await {
            forget(app, &parts).await;
            count += 1;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_etag_is_md5_of_part_md5s() {
        // boto3 check in PEERS.md: 5 MiB + 5 MiB + 1 B of "x".
        let five = hex::encode(md5::Md5::digest(vec![b'x'; 5 << 20]));
        let one = hex::encode(md5::Md5::digest(b"x"));
        assert_eq!(
            multipart_etag(&[&five, &five, &one]),
            "605fd0ecb2ed1e7f2edcd87e306f5614-3"
        );
    }

    #[test]
    fn copy_ranges_stay_inside_the_source() {
        assert_eq!(copy_range(None, 10).unwrap(), (0, 10));
        assert_eq!(copy_range(Some("bytes=2-5"), 10).unwrap(), (2, 4));
        for bad in ["bytes=5-2", "bytes=0-10", "2-5", "bytes=a-b"] {
            assert!(copy_range(Some(bad), 10).is_err(), "{bad}");
        }
    }
}
