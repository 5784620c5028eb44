//! How faults are answered (issue 31): so far, a request body the client cuts short.

use std::time::Duration;

use base64::Engine;
use object_store::signer::Signer;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::backend_tests;
use crate::harness::{ADMIN, ADMIN_PASSWORD, Auth, Db, TestApp};

backend_tests!(cut_bodies_are_client_errors);

/// Send `method path` announcing 200,000 bytes, send 70,000 (past the inline size, so a blob
/// is being written) and close our side: the status line of the answer. With `basic`, the
/// admin's password goes along (a presigned S3 URL carries its own signature).
async fn cut_upload(app: &TestApp, method: &str, path: &str, basic: bool) -> String {
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN}:{ADMIN_PASSWORD}"));
    let authorization = match basic {
        true => format!("Authorization: Basic {credentials}\r\n"),
        false => String::new(),
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{authorization}Content-Length: 200000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b'x'; 70_000]).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().unwrap_or_default().to_string()
}

async fn cut_bodies_are_client_errors(db: Db) {
    let app = TestApp::spawn(db).await;
    let rest = cut_upload(&app, "PUT", "/a/content/personal-files/cut-rest.bin", true).await;
    assert!(rest.starts_with("HTTP/1.1 400"), "REST: {rest}");
    let dav = cut_upload(&app, "PUT", "/dav/personal-files/cut-dav.bin", true).await;
    assert!(dav.starts_with("HTTP/1.1 400"), "WebDAV: {dav}");
    let token = app.token(ADMIN, &["-e", "1h"]);
    let presigned = crate::s3::bucket_client(&app, "io", &token, crate::s3::GATEWAY_SECRET)
        .signed_url(
            reqwest::Method::PUT,
            &object_store::path::Path::from("personal-files/cut-s3.bin"),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    let target = &presigned.as_str()[app.base.len()..];
    let s3 = cut_upload(&app, "PUT", target, false).await;
    assert!(s3.starts_with("HTTP/1.1 400"), "S3: {s3}");
    // Nothing partial was kept, and the server goes on.
    for name in ["cut-rest.bin", "cut-dav.bin", "cut-s3.bin"] {
        assert_eq!(
            app.read(&Auth::admin(), &format!("personal-files/{name}"))
                .await
                .0,
            StatusCode::NOT_FOUND,
            "{name}"
        );
    }
    assert_eq!(
        app.put(&Auth::admin(), "personal-files/whole.bin", "whole").await,
        StatusCode::CREATED
    );
}
