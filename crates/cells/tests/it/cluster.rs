//! Issue 33: nodes that keep nothing for themselves. The SFTP host key, the secrets and the
//! counters live in the database, so every node behind a load balancer answers as one server;
//! a node without the cluster's master key refuses to start and changes nothing.

use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey};

use crate::backend_tests;
use crate::harness::{ADMIN, ADMIN_PASSWORD, Db, TestApp, test_config};

backend_tests!(an_existing_host_key_is_imported_and_never_replaced);

/// The fingerprint an SSH client sees on `app`.
async fn served_fingerprint(app: &TestApp) -> String {
    let ssh = crate::sftp::ssh(app, ADMIN, ADMIN_PASSWORD).await.expect("login");
    ssh.fingerprint.clone().expect("an Ed25519 host key")
}

/// A data dir from before the cluster kept the host key: its key file is what clients pinned,
/// so the first start takes it into the database, and it stays the key served after the file
/// is gone or replaced.
async fn an_existing_host_key_is_imported_and_never_replaced(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let pinned = PrivateKey::from(Ed25519Keypair::from_seed(&[41; 32]));
    let file = dir.path().join(cells_sftp::HOST_KEY_FILE);
    std::fs::write(&file, pinned.to_openssh(LineEnding::LF).unwrap().as_bytes()).unwrap();
    let pinned = pinned.public_key().fingerprint(HashAlg::Sha256).to_string();

    let app = TestApp::spawn_in(db, dir).await;
    assert_eq!(served_fingerprint(&app).await, pinned);
    assert!(app.cli_ok(&["admin", "sftp", "host-key"]).ends_with(&pinned));

    // Another key in the file later (a restored backup, a copied dir): the database's stays.
    let other = PrivateKey::from(Ed25519Keypair::from_seed(&[42; 32]));
    std::fs::write(&file, other.to_openssh(LineEnding::LF).unwrap().as_bytes()).unwrap();
    let app = app.restart().await;
    assert_eq!(served_fingerprint(&app).await, pinned);
    std::fs::remove_file(&file).unwrap();
    let app = app.restart().await;
    assert_eq!(served_fingerprint(&app).await, pinned);
    app.stop().await;
}

/// Two nodes with data dirs of their own serve one host key; a third started without the
/// cluster's master key, or with another one, refuses to start and leaves the database's
/// secrets as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_their_secrets_and_refuse_another_master_key() {
    let Some(db) = Db::postgres().await else { return };
    let a = TestApp::spawn(db.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(a.data.join("master.key"), dir.path().join("master.key")).unwrap();
    let b = TestApp::spawn_in(db.clone(), dir).await;
    assert_eq!(served_fingerprint(&a).await, served_fingerprint(&b).await);
    // A token made through one node's data dir is good on the other (the checksum key is
    // the database's).
    let token = a.token(ADMIN, &["-e", "1h"]);
    let auth = crate::harness::Auth::bearer(&token);
    let (status, _) = b.get("/a/user/admin", &auth).await;
    assert_eq!(status, reqwest::StatusCode::OK);

    // No master key at all: refused, and no key file made.
    let dir = tempfile::tempdir().unwrap();
    let refused = cells::Server::prepare(test_config(&db, dir.path()))
        .await
        .err()
        .expect("a node without the master key is refused");
    assert!(format!("{refused:#}").contains("does not have"), "{refused:#}");
    assert!(!dir.path().join("master.key").exists());
    // Another master key: refused, nothing regenerated.
    std::fs::write(dir.path().join("master.key"), "ab".repeat(32)).unwrap();
    let refused = cells::Server::prepare(test_config(&db, dir.path()))
        .await
        .err()
        .expect("a node with another master key is refused");
    assert!(
        format!("{refused:#}").contains("not the one this database's secrets are sealed with"),
        "{refused:#}"
    );
    assert_eq!(served_fingerprint(&a).await, served_fingerprint(&b).await);
    let (status, _) = a.get("/a/user/admin", &auth).await;
    assert_eq!(status, reqwest::StatusCode::OK, "the cluster goes on");

    b.stop().await;
    let (db, _dir) = a.stop().await;
    db.cleanup().await;
}

/// One failed login of `login` with a wrong password, from 127.0.0.3.
async fn guess(app: &TestApp, login: &str) -> reqwest::StatusCode {
    app.client_from("127.0.0.3")
        .post(app.url("/a/tree/stats"))
        .basic_auth(login, Some("guess-password"))
        .json(&serde_json::json!({"NodePaths": ["personal-files"]}))
        .send()
        .await
        .unwrap()
        .status()
}

/// A password spray spread over two nodes is throttled as if it hit one: each node takes in
/// the other's failures (eleven here, eleven there: either alone is under the twenty free
/// ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spray_spread_over_nodes_is_throttled_as_one() {
    let Some(db) = Db::postgres().await else { return };
    let a = TestApp::spawn(db.clone()).await;
    let b = a.sibling().await;
    for i in 0..11 {
        assert_eq!(
            guess(&a, &format!("user{i}")).await,
            reqwest::StatusCode::UNAUTHORIZED
        );
    }
    // Shared four times a second; a generous margin for a loaded CI machine.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let mut statuses = Vec::new();
    for i in 11..22 {
        statuses.push(guess(&b, &format!("user{i}")).await);
    }
    assert!(
        statuses[..9]
            .iter()
            .all(|s| *s == reqwest::StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.last(),
        Some(&reqwest::StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Node a, too, blocks the address now. Five tries: alone, a would have counted sixteen.
    let mut on_a = Vec::new();
    for i in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        on_a.push(guess(&a, &format!("user{}", 90 + i)).await);
    }
    assert!(on_a.contains(&reqwest::StatusCode::TOO_MANY_REQUESTS), "{on_a:?}");
    b.stop_sibling().await;
    let (db, _dir) = a.stop().await;
    db.cleanup().await;
}

/// A PROXY protocol v2 header (HAProxy's `send-proxy-v2`) for a TCP connection from
/// `source` (IPv4) to `destination`.
fn proxy_header(source: &str, destination: std::net::SocketAddr) -> Vec<u8> {
    let source: std::net::SocketAddrV4 = source.parse().unwrap();
    let std::net::SocketAddr::V4(destination) = destination else {
        panic!("an IPv4 listener")
    };
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.extend([0x21, 0x11, 0, 12]);
    out.extend(source.ip().octets());
    out.extend(destination.ip().octets());
    out.extend(source.port().to_be_bytes());
    out.extend(destination.port().to_be_bytes());
    out
}

/// A WebDAV PROPFIND as `login` on one connection that starts with a PROXY header naming
/// `client` (when given): the status code, or 0 when the connection was closed without an answer.
async fn propfind_as(
    address: std::net::SocketAddr,
    client: Option<&str>,
    login: &str,
    password: &str,
) -> u16 {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut request = client.map(|c| proxy_header(c, address)).unwrap_or_default();
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"));
    request.extend(
        format!(
            "PROPFIND /dav/personal-files/ HTTP/1.1\r\nHost: cells\r\nDepth: 0\r\n\
             Authorization: Basic {credentials}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .into_bytes(),
    );
    stream.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// An SSH password login on a connection that starts with a PROXY header naming `client`:
/// whether it got in.
async fn ssh_login_as(address: std::net::SocketAddr, client: &str, password: &str) -> bool {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(&proxy_header(client, address)).await.unwrap();
    let config = std::sync::Arc::new(russh::client::Config::default());
    let handler = crate::sftp::Client::new();
    let Ok(mut handle) = russh::client::connect_stream(config, stream, handler).await else {
        return false;
    };
    match handle.authenticate_password(ADMIN, password).await {
        Ok(auth) => auth.success(),
        Err(_) => false,
    }
}

/// Behind a balancer that sends PROXY v2 headers (trusted: 127.0.0.0/8), each client named in
/// them is throttled on its own, over HTTP and over SFTP, and the login lockout is not what
/// refuses (the password is right). A server that does not trust the peer never reads the
/// header: the request is refused as the malformed HTTP it is (400, or closed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_headers_name_the_client_from_trusted_proxies_only() {
    use cells_core::proxy::{Cidr, TrustedProxies};
    let db = Db::Sqlite;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&db, dir.path());
    config.trusted_proxies = TrustedProxies::new(vec![Cidr::parse("127.0.0.0/8").unwrap()]);
    let server = cells::Server::prepare(config).await.expect("server starts");
    let (http, sftp) = (server.local_addr().unwrap(), server.sftp_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    // Without a header, a trusted peer is its own client.
    assert_eq!(propfind_as(http, None, ADMIN, ADMIN_PASSWORD).await, 207);
    for _ in 0..25 {
        assert_ne!(
            propfind_as(http, Some("198.51.100.1:4000"), "nobody", "wrong").await,
            207
        );
    }
    assert_eq!(
        propfind_as(http, Some("198.51.100.1:4001"), ADMIN, ADMIN_PASSWORD).await,
        429
    );
    assert_eq!(
        propfind_as(http, Some("198.51.100.2:4000"), ADMIN, ADMIN_PASSWORD).await,
        207
    );
    // SFTP counts the same addresses: the throttled one waits, another logs in.
    assert!(!ssh_login_as(sftp, "198.51.100.1:5000", ADMIN_PASSWORD).await);
    assert!(ssh_login_as(sftp, "198.51.100.3:5000", ADMIN_PASSWORD).await);
    let _ = stop.send(());
    running.await.unwrap().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let exposed = cells::Server::prepare(test_config(&db, dir.path()))
        .await
        .unwrap();
    let http = exposed.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(exposed.run(async move {
        let _ = stopped.await;
    }));
    let refused = propfind_as(http, Some("198.51.100.9:4000"), ADMIN, ADMIN_PASSWORD).await;
    assert!(matches!(refused, 400 | 0), "{refused}");
    assert_eq!(propfind_as(http, None, ADMIN, ADMIN_PASSWORD).await, 207);
    let _ = stop.send(());
    running.await.unwrap().unwrap();
}

/// `--tls self-signed` on two nodes with data dirs of their own: both serve the certificate the
/// first one made, so a client that pinned it may land on either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_serve_one_self_signed_certificate() {
    let Some(db) = Db::postgres().await else { return };
    let first = tempfile::tempdir().unwrap();
    let mut config = test_config(&db, first.path());
    config.tls = Some(cells_core::config::Tls::SelfSigned);
    let a = cells::Server::prepare(config).await.expect("first node");
    let second = tempfile::tempdir().unwrap();
    std::fs::copy(first.path().join("master.key"), second.path().join("master.key")).unwrap();
    let mut config = test_config(&db, second.path());
    config.tls = Some(cells_core::config::Tls::SelfSigned);
    let b = cells::Server::prepare(config).await.expect("second node");
    let fingerprint = |server: &cells::Server| server.certificates.as_ref().unwrap().fingerprint();
    assert_eq!(fingerprint(&a), fingerprint(&b));
    drop((a, b));
    db.cleanup().await;
}
