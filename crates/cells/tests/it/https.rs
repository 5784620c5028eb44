//! HTTPS served directly (issue 30): a self-signed certificate made once, a given one reloaded
//! when its files change (and kept when the new pair is bad), the handshake timeout,
//! `__Host-` cookies, HSTS only for a real name, the redirect port, and `X-Forwarded-For`
//! believed from trusted proxies only.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use reqwest::{Certificate, Client, StatusCode};
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

use cells::Server;
use cells_core::config::{Config, Tls};
use cells_core::proxy::{Cidr, TrustedProxies};

use crate::backend_tests;
use crate::harness::{ADMIN, ADMIN_PASSWORD, Db, test_config};

backend_tests!(
    https_self_signed_certificate,
    https_given_certificate_reloads,
    https_redirect_port_refuses_credentials,
    forwarded_for_is_believed_from_trusted_proxies_only,
);

/// A server started from `config` in `data`, stopped when dropped.
struct Running {
    address: SocketAddr,
    redirect: Option<SocketAddr>,
    fingerprint: Option<String>,
    _stop: oneshot::Sender<()>,
}

async fn start(config: Config) -> Running {
    let server = Server::prepare(config).await.expect("server starts");
    let address = server.local_addr().unwrap();
    let redirect = server.redirect_listener.as_ref().map(|l| l.local_addr().unwrap());
    let fingerprint = server.certificates.as_ref().map(|c| c.fingerprint());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running {
        address,
        redirect,
        fingerprint,
        _stop: stop,
    }
}

fn trusting(pem: &[u8]) -> Client {
    Client::builder()
        .tls_certs_only([Certificate::from_pem(pem).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn https_self_signed_certificate(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&db, dir.path());
    config.tls = Some(Tls::SelfSigned);
    config.limits.tls_handshake_timeout = Duration::from_secs(1);
    let server = start(config).await;
    let pem = std::fs::read(dir.path().join("tls/self-signed-cert.pem")).expect("made in DATA/tls");
    let client = trusting(&pem);
    let base = format!("https://localhost:{}", server.address.port());
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(
        health.headers().get("strict-transport-security").is_none(),
        "no HSTS for a self-signed certificate on localhost"
    );
    // The same certificate for the address.
    let by_address = client
        .get(format!("https://127.0.0.1:{}/healthz", server.address.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(by_address.status(), StatusCode::OK);

    // Browser cookies are `__Host-` and `Secure` when the external URL is https.
    let page = client.get(format!("{base}/login")).send().await.unwrap();
    let cookies: Vec<String> = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-cells_csrf=") && c.contains("; Secure")),
        "{cookies:?}"
    );

    // Plain HTTP on the TLS port gets nothing useful, and a silent client is cut at the
    // handshake timeout.
    let plain = Client::new()
        .get(format!("http://{}/healthz", server.address))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != StatusCode::OK);
    let mut silent = tokio::net::TcpStream::connect(server.address).await.unwrap();
    let mut buffer = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buffer)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "closed after the handshake timeout"
    );

    // Made once: a restart serves the same certificate.
    let fingerprint = server.fingerprint.clone();
    drop(server);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut config = test_config(&db, dir.path());
    config.tls = Some(Tls::SelfSigned);
    let again = start(config).await;
    assert_eq!(again.fingerprint, fingerprint);
}

/// A pair made for localhost in `dir`, as PEM (certificate, key).
fn pair(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let (cert, key) = cells_http::tls::self_signed(dir, &["localhost".into(), "127.0.0.1".into()]).unwrap();
    (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap())
}

async fn https_given_certificate_reloads(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (cert_one, key_one) = pair(one.path());
    let (cert_two, key_two) = pair(two.path());
    let cert = dir.path().join("server.crt");
    let key = dir.path().join("server.key");
    std::fs::write(&cert, &cert_one).unwrap();
    std::fs::write(&key, &key_one).unwrap();
    let mut config = test_config(&db, dir.path());
    config.tls = Some(Tls::Files {
        cert: cert.clone(),
        key: key.clone(),
    });
    config.external_url = "https://files.example.com".into();
    config.external_url_is_default = false;
    let server = start(config).await;
    let url = format!("https://127.0.0.1:{}/healthz", server.address.port());
    let response = trusting(&cert_one).get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000",
        "HSTS with a given certificate for a DNS name"
    );

    // New files: served within the poll, without a restart.
    std::fs::write(&key, &key_two).unwrap();
    std::fs::write(&cert, &cert_two).unwrap();
    let mut switched = false;
    for _ in 0..60 {
        if trusting(&cert_two).get(&url).send().await.is_ok() {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(switched, "the new certificate is served");
    assert!(trusting(&cert_one).get(&url).send().await.is_err());

    // A key that does not go with the certificate: the last good pair keeps serving.
    std::fs::write(&key, &key_one).unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        trusting(&cert_two).get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
}

async fn https_redirect_port_refuses_credentials(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&db, dir.path());
    config.tls = Some(Tls::SelfSigned);
    config.http_redirect_bind = Some("127.0.0.1:0".into());
    let server = start(config).await;
    let redirect = server.redirect.expect("a redirect port");
    let plain = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let moved = plain
        .get(format!("http://{redirect}/dav/personal-files/?x=1"))
        .header("Host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        moved.headers()["location"],
        format!("https://{}/dav/personal-files/?x=1", server.address).as_str(),
        "to our own external URL, never to the Host asked for"
    );
    let with_password = plain
        .get(format!("http://{redirect}/dav/personal-files/"))
        .basic_auth(ADMIN, Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(with_password.status(), StatusCode::FORBIDDEN);
    assert!(with_password.text().await.unwrap().contains("use https"));
    let upload = plain
        .put(format!("http://{redirect}/dav/personal-files/a.txt"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), StatusCode::FORBIDDEN);
}

/// Bad WebDAV logins (of no user, so that nobody's lockout counts them) claiming to come from
/// 198.51.100.1, then a good one claiming another address: is the good one throttled?
async fn throttled_after_forwarded_failures(address: SocketAddr) -> StatusCode {
    let client = Client::new();
    let url = format!("http://{address}/dav/personal-files/");
    for _ in 0..25 {
        client
            .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), &url)
            .basic_auth("nobody", Some("wrong password"))
            .header("X-Forwarded-For", "198.51.100.1")
            .send()
            .await
            .unwrap();
    }
    client
        .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), &url)
        .basic_auth(ADMIN, Some(ADMIN_PASSWORD))
        .header("Depth", "0")
        .header("X-Forwarded-For", "198.51.100.2")
        .send()
        .await
        .unwrap()
        .status()
}

async fn forwarded_for_is_believed_from_trusted_proxies_only(db: Db) {
    // Trusted: each claimed client has its own throttle.
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&db, dir.path());
    config.trusted_proxies = TrustedProxies::new(vec![Cidr::parse("127.0.0.0/8").unwrap()]);
    let behind_proxy = start(config).await;
    assert_eq!(
        throttled_after_forwarded_failures(behind_proxy.address).await,
        StatusCode::MULTI_STATUS
    );
    drop(behind_proxy);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Not trusted: the header is the client's own claim and is ignored, so the failures
    // count for the one real address.
    let exposed = start(test_config(&db, dir.path())).await;
    assert_eq!(
        throttled_after_forwarded_failures(exposed.address).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}
