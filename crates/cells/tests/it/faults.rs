//! How faults are answered (issue 31): so far, a request body the client cuts short.

use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::backend_tests;
use crate::harness::{ADMIN, ADMIN_PASSWORD, Auth, Db, TestApp};

backend_tests!(cut_bodies_are_client_errors);

/// Send `method path` announcing 200,000 bytes, send 70,000 (past the inline size, so a blob
/// is being written) and close our side: the status line of the answer.
async fn cut_upload(app: &TestApp, method: &str, path: &str) -> String {
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN}:{ADMIN_PASSWORD}"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Basic {basic}\r\nContent-Length: 200000\r\n\r\n"
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
    let rest = cut_upload(&app, "PUT", "/a/content/personal-files/cut-rest.bin").await;
    assert!(rest.starts_with("HTTP/1.1 400"), "REST: {rest}");
    let dav = cut_upload(&app, "PUT", "/dav/personal-files/cut-dav.bin").await;
    assert!(dav.starts_with("HTTP/1.1 400"), "WebDAV: {dav}");
    // Nothing partial was kept, and the server goes on.
    for name in ["cut-rest.bin", "cut-dav.bin"] {
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
