//! CopyObject and UploadPartCopy, routed around s3s's parser: s3s refuses
//! `x-amz-copy-source: io/…` because AWS bucket names have at least 3 characters, and ours is
//! `io` (SPEC §4). The header is signed, so it cannot be rewritten; s3s still verifies the
//! signature before this route runs. Copies naming the alias (`cells`) come here too: one
//! path for every copy within our tree.

use axum::http::{Extensions, HeaderMap, Method, Uri};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};

use s3s::dto::{ETagCondition, Timestamp, TimestampFormat};

use super::BUCKET;
use super::gateway::{Gateway, ObjectMeta, check_copy_preconditions, check_metadata, key_path, timestamp};
use super::{multipart, s3_error};
use cells_core::SharedApp;
use cells_core::auth::principal::Principal;
use cells_core::files::Entry;
use cells_core::files::path::percent_decode;

pub struct CopyRoute {
    app: SharedApp,
}

impl CopyRoute {
    pub fn new(app: SharedApp) -> CopyRoute {
        CopyRoute { app }
    }
}

/// The source key of an `x-amz-copy-source` naming our bucket, by either name.
fn source_key(app: &SharedApp, headers: &HeaderMap) -> Option<String> {
    let raw = headers.get("x-amz-copy-source")?.to_str().ok()?;
    let decoded = decode(raw.split('?').next()?)?;
    let inner = decoded.strip_prefix('/').unwrap_or(&decoded);
    object_key(app, inner)
}

/// The key in `bucket/key`, when the bucket is ours.
fn object_key(app: &SharedApp, path: &str) -> Option<String> {
    let (bucket, key) = path.split_once('/')?;
    super::is_bucket(app, bucket).then(|| key.to_string())
}

fn decode(text: &str) -> Option<String> {
    String::from_utf8(percent_decode(text)).ok()
}

#[async_trait::async_trait]
impl S3Route for CopyRoute {
    fn is_match(&self, method: &Method, uri: &Uri, headers: &HeaderMap, _: &mut Extensions) -> bool {
        // With `uploadId` and `partNumber` in the query this is UploadPartCopy, else CopyObject.
        *method == Method::PUT
            && uri
                .path()
                .strip_prefix('/')
                .is_some_and(|path| object_key(&self.app, path).is_some())
            && source_key(&self.app, headers).is_some()
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
        let source = source_key(&self.app, &req.headers)
            .ok_or_else(|| s3_error!(InvalidArgument, "bad x-amz-copy-source"))?;
        let target = req
            .uri
            .path()
            .strip_prefix('/')
            .and_then(|path| object_key(&self.app, path));
        let target = target
            .as_deref()
            .and_then(decode)
            .ok_or_else(|| s3_error!(InvalidURI, "the key is not valid UTF-8"))?;
        let upload_id = query_value(&req.uri, "uploadId");
        let part_number = query_value(&req.uri, "partNumber");
        match (upload_id, part_number) {
            (None, None) => copy(&self.app, &principal, &req.headers, &source, &target).await,
            (Some(upload_id), Some(number)) => {
                let number = number
                    .parse()
                    .map_err(|_| s3_error!(InvalidArgument, "partNumber must be an integer"))?;
                let source = readable_source(&self.app, &principal, &req.headers, &source).await?;
                let range = req
                    .headers
                    .get("x-amz-copy-source-range")
                    .and_then(|v| v.to_str().ok());
                let (etag, modified) = multipart::upload_part_copy(
                    &self.app, &principal, &target, &upload_id, number, &source, range,
                )
                .await?;
                xml_response("CopyPartResult", &etag, modified)
            }
            _ => Err(s3_error!(
                InvalidRequest,
                "UploadPartCopy needs both uploadId and partNumber"
            )),
        }
    }
}

/// The decoded value of `name` in the request's query string.
fn query_value(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| decode(&value.replace('+', " "))).flatten()
    })
}

/// The copy source, once the caller may read it and the `x-amz-copy-source-if-*`
/// preconditions hold.
async fn readable_source(
    app: &SharedApp,
    principal: &Principal,
    headers: &HeaderMap,
    key: &str,
) -> S3Result<Entry> {
    let (source, folder) = Gateway::new(app.clone()).object(principal, BUCKET, key).await?;
    if folder {
        return Err(s3_error!(
            InvalidRequest,
            "folders (keys ending in /) cannot be copied"
        ));
    }
    let condition = |name: &str| {
        headers
            .get(name)
            .map(|v| ETagCondition::parse_http_header(v.as_bytes()))
            .transpose()
            .map_err(|_| s3_error!(InvalidArgument, "{name} is not an ETag"))
    };
    let date = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| Timestamp::parse(TimestampFormat::HttpDate, v))
            .transpose()
            .map_err(|_| s3_error!(InvalidArgument, "{name} is not an HTTP date"))
    };
    check_copy_preconditions(
        &source,
        condition("x-amz-copy-source-if-match")?.as_ref(),
        date("x-amz-copy-source-if-unmodified-since")?.as_ref(),
        condition("x-amz-copy-source-if-none-match")?.as_ref(),
        date("x-amz-copy-source-if-modified-since")?.as_ref(),
    )?;
    Ok(source)
}

/// `<CopyObjectResult>` or `<CopyPartResult>`.
fn xml_response(element: &str, etag: &str, modified: i64) -> S3Result<S3Response<Body>> {
    let mut date = Vec::new();
    let _ = timestamp(modified).format(TimestampFormat::DateTime, &mut date);
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{element}><ETag>\"{etag}\"</ETag><LastModified>{}</LastModified></{element}>",
        String::from_utf8_lossy(&date)
    );
    let mut response = S3Response::new(Body::from(xml));
    response.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/xml"),
    );
    Ok(response)
}

async fn copy(
    app: &SharedApp,
    principal: &Principal,
    headers: &HeaderMap,
    source: &str,
    target: &str,
) -> S3Result<S3Response<Body>> {
    let (to, to_folder) = key_path(target)?;
    if to_folder {
        return Err(s3_error!(
            InvalidRequest,
            "folders (keys ending in /) cannot be copied"
        ));
    }
    let source = readable_source(app, principal, headers, source).await?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let replace = header("x-amz-metadata-directive").is_some_and(|d| d.eq_ignore_ascii_case("REPLACE"));
    if *source.path() == to && !replace {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata"
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
            source.path(),
            &to,
            new_meta.as_ref().map(Option::as_deref),
            true,
        )
        .await
        .map_err(s3_error)?;
    xml_response("CopyObjectResult", &entry.node().etag, entry.node().mtime)
}
