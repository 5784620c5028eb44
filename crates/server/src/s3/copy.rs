//! CopyObject, routed around s3s's parser: s3s refuses `x-amz-copy-source: io/…` because AWS
//! bucket names have at least 3 characters, and ours is `io` (SPEC §4). The header is signed,
//! so it cannot be rewritten; s3s still verifies the signature before this route runs.

use axum::http::{Extensions, HeaderMap, Method, Uri};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};

use super::gateway::{ObjectMeta, check_metadata, key_path, timestamp};
use super::s3_error;
use crate::SharedApp;
use crate::auth::principal::Principal;

pub struct CopyRoute {
    app: SharedApp,
}

impl CopyRoute {
    pub fn new(app: SharedApp) -> CopyRoute {
        CopyRoute { app }
    }
}

/// The source key of an `x-amz-copy-source` naming our bucket.
fn source_key(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get("x-amz-copy-source")?.to_str().ok()?;
    let decoded = percent_decode(raw.split('?').next()?)?;
    let inner = decoded.strip_prefix('/').unwrap_or(&decoded);
    inner.strip_prefix("io/").map(str::to_string)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let value = u8::from_str_radix(text.get(i + 1..i + 3)?, 16).ok()?;
            out.push(value);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[async_trait::async_trait]
impl S3Route for CopyRoute {
    fn is_match(&self, method: &Method, uri: &Uri, headers: &HeaderMap, _: &mut Extensions) -> bool {
        // UploadPartCopy (with uploadId) stays with s3s.
        *method == Method::PUT
            && uri.path().starts_with("/io/")
            && !uri.query().is_some_and(|q| q.contains("uploadId="))
            && source_key(headers).is_some()
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        let Some(credentials) = req.credentials.as_ref() else {
            return Err(s3_error!(AccessDenied, "anonymous requests are refused"));
        };
        let principal = super::auth::resolve(&self.app, &credentials.access_key).await?;
        req.extensions.insert(principal);
        Ok(())
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let principal = super::auth::principal(&req)?.clone();
        let source =
            source_key(&req.headers).ok_or_else(|| s3_error!(InvalidArgument, "bad x-amz-copy-source"))?;
        let target = percent_decode(req.uri.path().strip_prefix("/io/").unwrap_or_default())
            .ok_or_else(|| s3_error!(InvalidURI, "the key is not valid UTF-8"))?;
        copy(&self.app, &principal, &req.headers, &source, &target).await
    }
}

async fn copy(
    app: &SharedApp,
    principal: &Principal,
    headers: &HeaderMap,
    source: &str,
    target: &str,
) -> S3Result<S3Response<Body>> {
    let (from, from_folder) = key_path(source)?;
    let (to, to_folder) = key_path(target)?;
    if from_folder || to_folder {
        return Err(s3_error!(
            InvalidRequest,
            "folders (keys ending in /) cannot be copied"
        ));
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let replace = header("x-amz-metadata-directive").is_some_and(|d| d.eq_ignore_ascii_case("REPLACE"));
    if from == to && !replace {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata"
        ));
    }
    let source_entry = app.tree.stat(principal, &from).await.map_err(s3_error)?;
    if let Some(expected) = header("x-amz-copy-source-if-match")
        && expected.trim_matches('"') != source_entry.node.etag
    {
        return Err(s3_error!(
            PreconditionFailed,
            "x-amz-copy-source-if-match did not hold"
        ));
    }
    if let Some(unwanted) = header("x-amz-copy-source-if-none-match")
        && unwanted.trim_matches('"') == source_entry.node.etag
    {
        return Err(s3_error!(
            PreconditionFailed,
            "x-amz-copy-source-if-none-match did not hold"
        ));
    }
    let new_meta = if replace {
        let user: s3s::dto::Metadata = headers
            .iter()
            .filter_map(|(name, value)| {
                let key = name.as_str().strip_prefix("x-amz-meta-")?;
                Some((key.to_string(), value.to_str().ok()?.to_string()))
            })
            .collect();
        check_metadata(Some(&user))?;
        Some(ObjectMeta::new(header("content-type").map(str::to_string), Some(user)).to_json())
    } else {
        None
    };
    let entry = app
        .tree
        .copy_file(
            principal,
            &from,
            &to,
            new_meta.as_ref().map(Option::as_deref),
            true,
        )
        .await
        .map_err(s3_error)?;
    let mut modified = Vec::new();
    let _ = timestamp(entry.node.mtime).format(s3s::dto::TimestampFormat::DateTime, &mut modified);
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CopyObjectResult><ETag>\"{}\"</ETag><LastModified>{}</LastModified></CopyObjectResult>",
        entry.node.etag,
        String::from_utf8_lossy(&modified)
    );
    let mut response = S3Response::new(Body::from(xml));
    response.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/xml"),
    );
    Ok(response)
}
