//! The S3 client of `object`: its settings from the standard `AWS_*` variables, timeouts and
//! retries bounded by `--dependency-timeout`, and a tolerance for stores that answer a ranged
//! GET with 200.

use std::time::Duration;

use async_trait::async_trait;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

use super::ObjectConfig;

/// The client of the bucket `config` names, at the endpoint and with the credentials of the
/// `AWS_*` variables (`AWS_REGION` defaults to `us-east-1`).
pub(super) fn connect(config: &ObjectConfig) -> anyhow::Result<AmazonS3> {
    use anyhow::Context as _;
    let env = |names: &[&str]| {
        names
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    };
    let region = env(&["AWS_REGION", "AWS_DEFAULT_REGION"]).unwrap_or_else(|| "us-east-1".into());
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&config.bucket)
        .with_region(region)
        // Path-style requests (`endpoint/bucket/key`): what custom endpoints serve.
        .with_virtual_hosted_style_request(false);
    let endpoint = env(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]);
    if let Some(endpoint) = &endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(key) = env(&["AWS_ACCESS_KEY_ID"]) {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = env(&["AWS_SECRET_ACCESS_KEY"]) {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(token) = env(&["AWS_SESSION_TOKEN"]) {
        builder = builder.with_token(token);
    }
    // (The client options carry `allow_http`: an `http://` endpoint needs no flag.)
    let client = ClientOptions::new()
        .with_allow_http(endpoint.is_some_and(|endpoint| endpoint.starts_with("http://")))
        .with_connect_timeout(config.timeout)
        // A transfer takes as long as it takes. The read timeout (reqwest: until the answer's
        // headers, from the request's start) cuts a stalled one: long enough for a large part
        // over a slow link. New requests are refused at once during an outage (`check`).
        .with_timeout_disabled()
        .with_read_timeout((config.timeout * 60).max(Duration::from_secs(300)));
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: config.timeout,
    };
    let s3 = builder
        .with_http_connector(RangeTolerant)
        .with_client_options(client)
        .with_retry(retry)
        .build()
        .context("the object store's settings (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, …)")?;
    Ok(s3)
}

/// The standard HTTP client, but a ranged GET answered 200 with a `Content-Range` (as
/// `rclone serve s3` answers, where S3 says 206) is taken for the 206 it means: the client
/// would refuse it, and reading the whole object instead would cost a download per read.
#[derive(Debug)]
struct RangeTolerant;

impl HttpConnector for RangeTolerant {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(Tolerant(
            ReqwestConnector::default().connect(options)?,
        )))
    }
}

#[derive(Debug)]
struct Tolerant(HttpClient);

#[async_trait]
impl HttpService for Tolerant {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let ranged = request.headers().contains_key(http::header::RANGE);
        let mut response = self.0.execute(request).await?;
        if ranged
            && response.status() == http::StatusCode::OK
            && response.headers().contains_key(http::header::CONTENT_RANGE)
        {
            *response.status_mut() = http::StatusCode::PARTIAL_CONTENT;
        }
        Ok(response)
    }
}
