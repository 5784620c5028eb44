//! WebDAV at /dav: Basic auth with passwords and tokens, one tree shared with REST, hostile
//! names, and the scope matrix of the token issue re-run over WebDAV.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::access_matrix::{self, Driver, Outcome};
use crate::backend_tests;
use crate::harness::{ADMIN, ADMIN_PASSWORD, Auth, Db, TestApp};

backend_tests!(
    dav_auth_and_shared_tree,
    dav_hostile_names,
    dav_scope_matrix_read_only,
    dav_scope_matrix_read_write,
    dav_workspace_access_matrix,
    dav_many_files_and_a_large_one,
    dav_locks_hold_on_every_node,
    dav_propfind_lists_every_property,
    dav_large_put_is_hashed_after_the_commit,
    dav_getetag_is_the_etag_header,
    dav_propfind_honours_its_preconditions,
);

/// A PROPFIND body asking for `getetag` only.
const GETETAG: &str =
    r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>"#;

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).unwrap()
}

/// Percent-encode each segment of a workspace path for a URL.
fn encode(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            segment
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(value) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(value);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Dav<'a> {
    app: &'a TestApp,
    auth: Auth,
}

impl Dav<'_> {
    /// The admin, with a fresh personal access token (one hour) as the Basic password.
    fn with_token(app: &TestApp) -> Dav<'_> {
        Dav {
            app,
            auth: Auth::basic(ADMIN, &app.token(ADMIN, &["-e", "1h"])),
        }
    }

    fn request(&self, verb: &str, path: &str) -> reqwest::RequestBuilder {
        self.app
            .request(method(verb), &format!("/dav/{}", encode(path)), &self.auth)
    }

    /// Names in a folder (PROPFIND Depth 1), or `None` when refused.
    async fn names(&self, path: &str) -> Option<Vec<String>> {
        self.listing(path).await.ok()
    }

    /// Names in a folder (PROPFIND Depth 1), or how it was refused.
    async fn listing(&self, path: &str) -> Result<Vec<String>, Outcome> {
        let response = self
            .request("PROPFIND", &format!("{path}/"))
            .header("Depth", "1")
            .send()
            .await
            .unwrap();
        if response.status() != StatusCode::MULTI_STATUS {
            return Err(Outcome::of_status(response.status()));
        }
        let body = response.text().await.unwrap();
        let own = decode(&format!("/dav/{}", encode(path)))
            .trim_end_matches('/')
            .to_string();
        let mut names: Vec<String> = body
            .split("<D:href>")
            .skip(1)
            .filter_map(|part| part.split("</D:href>").next())
            .filter(|href| decode(href).trim_end_matches('/') != own)
            .map(|href| decode(href.trim_end_matches('/').rsplit('/').next().unwrap()))
            .collect();
        names.sort();
        Ok(names)
    }

    async fn status(&self, verb: &str, path: &str) -> StatusCode {
        self.request(verb, path).send().await.unwrap().status()
    }

    async fn moved(&self, verb: &str, from: &str, to: &str) -> StatusCode {
        let destination = format!("{}/dav/{}", self.app.base, encode(to));
        self.request(verb, from)
            .header("Destination", destination)
            .header("Overwrite", "F")
            .send()
            .await
            .unwrap()
            .status()
    }
}

/// A WebDAV answer as an outcome: 409 (a missing parent, RFC 4918 §9.7.1, §9.3.1, §9.8.5) is
/// how WebDAV says "not found" of a target's folder; 207 from DELETE, MOVE or COPY means that
/// part of it failed.
fn dav_outcome(status: StatusCode) -> Outcome {
    match status {
        StatusCode::CONFLICT => Outcome::NotFound,
        StatusCode::MULTI_STATUS => Outcome::Other("207: partly done".into()),
        other => Outcome::of_status(other),
    }
}

impl Driver for Dav<'_> {
    async fn list(&self, path: &str) -> Result<Vec<String>, Outcome> {
        self.listing(path).await
    }
    async fn read(&self, path: &str) -> Outcome {
        dav_outcome(self.status("GET", path).await)
    }
    async fn write(&self, path: &str, content: &[u8]) -> Outcome {
        let response = self
            .request("PUT", path)
            .body(content.to_vec())
            .send()
            .await
            .unwrap();
        dav_outcome(response.status())
    }
    async fn mkdir(&self, path: &str) -> Outcome {
        dav_outcome(self.status("MKCOL", path).await)
    }
    async fn delete(&self, path: &str) -> Outcome {
        dav_outcome(self.status("DELETE", path).await)
    }
    async fn rename(&self, from: &str, to: &str) -> Outcome {
        dav_outcome(self.moved("MOVE", from, to).await)
    }
    async fn copy(&self, from: &str, to: &str) -> Outcome {
        dav_outcome(self.moved("COPY", from, to).await)
    }
}

async fn dav_auth_and_shared_tree(db: Db) {
    let app = TestApp::spawn(db).await;
    let response = app
        .http
        .request(method("PROPFIND"), app.url("/dav/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"Cells DAV\""
    );
    let wrong = Dav {
        app: &app,
        auth: Auth::basic(ADMIN, "wrong"),
    };
    assert_eq!(wrong.status("PROPFIND", "").await, StatusCode::UNAUTHORIZED);

    let admin = Dav {
        app: &app,
        auth: Auth::basic(ADMIN, ADMIN_PASSWORD),
    };
    assert_eq!(admin.names("").await.unwrap(), ["common-files", "personal-files"]);
    assert_eq!(admin.mkdir("personal-files/docs").await, Outcome::Done);
    assert_eq!(
        admin.write("personal-files/docs/a.txt", b"over webdav").await,
        Outcome::Done
    );
    // The same node over REST, with the same UUID as the oc:id property.
    let rest = Auth::admin();
    assert_eq!(
        app.read(&rest, "personal-files/docs/a.txt").await.1,
        b"over webdav"
    );
    let uuid = app.uuid(&rest, "personal-files/docs/a.txt").await;
    let body = admin
        .request("PROPFIND", "personal-files/docs/a.txt")
        .header("Depth", "0")
        .body(r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:oc="http://owncloud.org/ns"><D:prop><oc:id/><D:getetag/></D:prop></D:propfind>"#)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains(&uuid), "oc:id carries the node UUID: {body}");

    // quota-used-bytes at the root: what the user's personal files take.
    let body = admin
        .request("PROPFIND", "")
        .header("Depth", "0")
        .body(r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-used-bytes/></D:prop></D:propfind>"#)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains(">11</"), "11 bytes used: {body}");

    // A PAT or an access token of the same login works as the password; another user's does not.
    let token = app.token(ADMIN, &["-e", "1h"]);
    let by_token = Dav {
        app: &app,
        auth: Auth::basic(ADMIN, &token),
    };
    assert_eq!(by_token.read("personal-files/docs/a.txt").await, Outcome::Done);
    app.create_user("mallory", "mallory-password", "standard").await;
    let foreign = Dav {
        app: &app,
        auth: Auth::basic("mallory", &token),
    };
    assert_eq!(foreign.status("PROPFIND", "").await, StatusCode::UNAUTHORIZED);
    let id = app
        .cli_ok(&["admin", "user", "token", "list", "-u", ADMIN])
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    app.cli_ok(&["admin", "user", "token", "revoke", &id]);
    assert_eq!(
        by_token.status("GET", "personal-files/docs/a.txt").await,
        StatusCode::UNAUTHORIZED
    );
    let (_, session) = app
        .post(
            "/a/frontend/session",
            &Auth::None,
            json!({"AuthInfo": {"type": "credentials", "login": ADMIN, "password": ADMIN_PASSWORD}}),
        )
        .await;
    let jwt = Dav {
        app: &app,
        auth: Auth::basic(ADMIN, session["JWT"].as_str().unwrap()),
    };
    assert_eq!(jwt.read("personal-files/docs/a.txt").await, Outcome::Done);

    // Ranges and conditional GET come from the same content.
    let response = admin
        .request("GET", "personal-files/docs/a.txt")
        .header("Range", "bytes=5-")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"webdav");
}

async fn dav_hostile_names(db: Db) {
    let app = TestApp::spawn(db).await;
    let dav = Dav {
        app: &app,
        auth: Auth::basic(ADMIN, ADMIN_PASSWORD),
    };
    let long = "n".repeat(255);
    let names = [
        "with space",
        "per%cent",
        "hash#tag",
        "question?mark",
        "emoji 😀",
        "caf\u{e9}",
        "cafe\u{301}",
        long.as_str(),
    ];
    for name in names {
        let path = format!("personal-files/{name}");
        assert_eq!(
            dav.write(&path, name.as_bytes()).await,
            Outcome::Done,
            "PUT {name:?}"
        );
        let response = dav.request("GET", &path).send().await.unwrap();
        assert_eq!(
            response.bytes().await.unwrap().as_ref(),
            name.as_bytes(),
            "GET {name:?}"
        );
    }
    let listed = dav.names("personal-files").await.unwrap();
    for name in names {
        assert!(listed.iter().any(|l| l == name), "{name:?} listed in {listed:?}");
    }
    // NFC and NFD are different names, kept as given.
    assert_eq!(
        app.read(&Auth::admin(), "personal-files/caf\u{e9}").await.1,
        "caf\u{e9}".as_bytes()
    );
    // Escapes stay inside the tree; too long a name is refused; a bad body is a clear error.
    for target in [
        "/dav/personal-files/%2e%2e/%2e%2e/etc/passwd",
        "/dav/personal-files/a%2fb",
        "/dav/../../etc/passwd",
    ] {
        let status = app.raw_get(target, ADMIN, ADMIN_PASSWORD).await;
        assert!((400..500).contains(&status), "{target}: {status}");
    }
    assert_ne!(
        dav.write(&format!("personal-files/{}", "x".repeat(256)), b"x")
            .await,
        Outcome::Done
    );
    let response = dav
        .request("PROPFIND", "personal-files/")
        .header("Depth", "1")
        .body("<not xml")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let huge = format!(
        r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>{}</D:prop></D:propfind>"#,
        "<D:x/>".repeat(2_000_000)
    );
    let response = dav
        .request("PROPFIND", "personal-files/")
        .header("Depth", "0")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "a 12 MB XML body"
    );
    let bomb = r#"<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop>&c;</D:propfind>"#;
    let response = dav
        .request("PROPFIND", "personal-files/")
        .header("Depth", "1")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_client_error(),
        "entity expansion: {}",
        response.status()
    );
    let response = dav
        .request("PROPFIND", "personal-files/")
        .header("Depth", "infinity")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "Depth: infinity is refused"
    );
    assert!(response.text().await.unwrap().contains("propfind-finite-depth"));
    assert_eq!(app.get("/healthz", &Auth::None).await.0, StatusCode::OK);
}

async fn dav_scope_matrix(db: Db, permission: &str) {
    let app = TestApp::spawn(db).await;
    let token = access_matrix::owner_token(&app, permission).await;
    let dav = Dav {
        app: &app,
        auth: Auth::basic("owner", &token),
    };
    let cases = access_matrix::scope_cases(permission == "rw");
    access_matrix::run(&dav, &format!("WebDAV, scope {permission}"), cases).await;
    assert_eq!(
        dav.names("").await.unwrap(),
        ["personal-files"],
        "only the workspace leading to the scope"
    );
    // A write lock needs the right to write: a read-only token cannot lock the owner out.
    let lock = r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    let status = dav
        .request("LOCK", "personal-files/a/inner.txt")
        .header("Depth", "0")
        .header("Timeout", "Second-60")
        .body(lock)
        .send()
        .await
        .unwrap()
        .status();
    if permission == "rw" {
        assert_eq!(status, StatusCode::OK, "rw may lock inside its folder");
    } else {
        assert_eq!(status, StatusCode::FORBIDDEN, "r may not lock");
        assert_eq!(
            app.put(
                &Auth::basic("owner", "owner-password"),
                "personal-files/a/inner.txt",
                "owner still writes"
            )
            .await,
            StatusCode::OK
        );
    }
}

async fn dav_workspace_access_matrix(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = access_matrix::workspace_app(&app).await;
    let secrets = access_matrix::role_secrets(&app, &token, false);
    access_matrix::run_roles("WebDAV", &secrets, async |login, secret| Dav {
        app: &app,
        auth: Auth::basic(login, secret),
    })
    .await;
}

async fn dav_scope_matrix_read_only(db: Db) {
    dav_scope_matrix(db, "r").await;
}

async fn dav_scope_matrix_read_write(db: Db) {
    dav_scope_matrix(db, "rw").await;
}

async fn dav_many_files_and_a_large_one(db: Db) {
    use futures_util::StreamExt;
    let app = TestApp::spawn(db).await;
    let dav = Dav::with_token(&app);
    assert_eq!(dav.mkdir("personal-files/many").await, Outcome::Done);
    let puts = futures_util::stream::iter(0..300)
        .map(|i| {
            let request = dav
                .request("PUT", &format!("personal-files/many/f{i:03}.txt"))
                .body(format!("file {i}"));
            async move { request.send().await.unwrap().status() }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    assert!(puts.iter().all(|s| *s == StatusCode::CREATED), "{puts:?}");
    assert_eq!(dav.names("personal-files/many").await.unwrap().len(), 300);
    assert_eq!(
        dav.request("GET", "personal-files/many/f123.txt")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "file 123"
    );

    // 48 MiB, streamed in 1 MiB chunks, read back identical.
    let chunk = |i: u32| {
        (0..1 << 20)
            .map(|j| ((i * 31 + j) % 251) as u8)
            .collect::<Vec<u8>>()
    };
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(
        (0..48).map(move |i| Ok::<_, std::io::Error>(chunk(i))),
    ));
    assert_eq!(
        dav.request("PUT", "personal-files/large.bin")
            .body(body)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    let back = dav
        .request("GET", "personal-files/large.bin")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(back.len(), 48 << 20);
    assert!(
        (0..48).all(|i| back[(i as usize) << 20..((i as usize) + 1) << 20] == chunk(i)[..]),
        "content differs"
    );
    // An overwrite over WebDAV keeps the UUID, as on REST.
    let uuid = app.uuid(&Auth::admin(), "personal-files/large.bin").await;
    assert_eq!(
        dav.request("PUT", "personal-files/large.bin")
            .body("small")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.uuid(&Auth::admin(), "personal-files/large.bin").await, uuid);
}

/// The `DAV:lockdiscovery` of a resource, as XML text.
async fn lock_discovery(dav: &Dav<'_>, path: &str) -> String {
    dav.request("PROPFIND", path)
        .header("Depth", "0")
        .body(r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>"#)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A lock taken through one node holds on another node of the same database: a write there
/// without the lock token is refused (423), with it (an `If` header) it passes; UNLOCK on the
/// second node frees the file for the first. A lock also times out.
async fn dav_locks_hold_on_every_node(db: Db) {
    let node_a = TestApp::spawn(db).await;
    let node_b = node_a.sibling().await;
    let token = node_a.token(ADMIN, &["-e", "1h"]);
    let on_a = Dav {
        app: &node_a,
        auth: Auth::basic(ADMIN, &token),
    };
    let on_b = Dav {
        app: &node_b,
        auth: Auth::basic(ADMIN, &token),
    };
    assert_eq!(
        node_a.put(&Auth::admin(), "common-files/shared.odt", "v1").await,
        StatusCode::CREATED
    );
    let lockinfo = r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>alice's laptop</D:owner></D:lockinfo>"#;
    let locked = on_a
        .request("LOCK", "common-files/shared.odt")
        .header("Depth", "0")
        .header("Timeout", "Second-600")
        .body(lockinfo)
        .send()
        .await
        .unwrap();
    assert_eq!(locked.status(), StatusCode::OK);
    let lock_token = locked.headers()["lock-token"].to_str().unwrap().to_string();

    let put = |dav: &Dav<'_>, body: &'static str, token: Option<&str>| {
        let mut request = dav.request("PUT", "common-files/shared.odt").body(body);
        if let Some(token) = token {
            request = request.header("If", format!("({token})"));
        }
        request.send()
    };
    assert_eq!(
        put(&on_b, "v2", None).await.unwrap().status(),
        StatusCode::LOCKED,
        "locked on the other node"
    );
    let discovered = lock_discovery(&on_b, "common-files/shared.odt").await;
    assert!(
        discovered.contains("alice's laptop"),
        "the owner is seen from the other node: {discovered}"
    );
    assert!(
        put(&on_b, "v3", Some(&lock_token))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let unlocked = on_b
        .request("UNLOCK", "common-files/shared.odt")
        .header("Lock-Token", lock_token.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unlocked.status(), StatusCode::NO_CONTENT);
    assert!(
        put(&on_a, "v4", None).await.unwrap().status().is_success(),
        "unlocked everywhere"
    );

    // A lock that is not refreshed times out.
    let short = on_a
        .request("LOCK", "common-files/shared.odt")
        .header("Depth", "0")
        .header("Timeout", "Second-1")
        .body(lockinfo)
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), StatusCode::OK);
    assert_eq!(put(&on_b, "v5", None).await.unwrap().status(), StatusCode::LOCKED);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert!(
        put(&on_b, "v6", None).await.unwrap().status().is_success(),
        "the lock timed out"
    );

    // /personal-files is each user's own: alice's lock there is nothing to bob, whose
    // personal-files/notes.txt is another file, nor does he see it.
    node_a.create_user("alice", "alice-password", "standard").await;
    node_a.create_user("bob", "bob-password", "standard").await;
    let alice = Dav {
        app: &node_a,
        auth: Auth::basic("alice", "alice-password"),
    };
    let bob = Dav {
        app: &node_b,
        auth: Auth::basic("bob", "bob-password"),
    };
    for dav in [&alice, &bob] {
        let made = dav
            .request("PUT", "personal-files/notes.txt")
            .body("mine")
            .send()
            .await
            .unwrap();
        assert_eq!(made.status(), StatusCode::CREATED);
    }
    let lock = |dav: &Dav<'_>, path: &str| {
        dav.request("LOCK", path)
            .header("Depth", "0")
            .header("Timeout", "Second-600")
            .body(lockinfo)
            .send()
    };
    assert_eq!(
        lock(&alice, "personal-files/notes.txt").await.unwrap().status(),
        StatusCode::OK
    );
    let written = bob
        .request("PUT", "personal-files/notes.txt")
        .body("still mine")
        .send()
        .await
        .unwrap();
    assert!(
        written.status().is_success(),
        "bob's own file is not alice's: {}",
        written.status()
    );
    let seen = lock_discovery(&bob, "personal-files/notes.txt").await;
    assert!(!seen.contains("alice's laptop"), "{seen}");
    let again = alice
        .request("PUT", "personal-files/notes.txt")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        StatusCode::LOCKED,
        "alice's lock holds for alice's file"
    );
    // The common files are everyone's: a lock there holds for every user.
    assert_eq!(
        lock(&alice, "common-files/shared.odt").await.unwrap().status(),
        StatusCode::OK
    );
    let blocked = bob
        .request("PUT", "common-files/shared.odt")
        .body("bob")
        .send()
        .await
        .unwrap();
    assert_eq!(blocked.status(), StatusCode::LOCKED);
    node_b.stop_sibling().await;
}

/// A PROPFIND answer as (href, status, property) triples, parsed by a real XML parser.
fn propstats(body: &str) -> Vec<(String, String, xmltree::Element)> {
    let root = xmltree::Element::parse(body.as_bytes()).expect("a well-formed multistatus");
    assert_eq!(
        (root.name.as_str(), root.namespace.as_deref()),
        ("multistatus", Some("DAV:"))
    );
    let children = |e: &xmltree::Element| -> Vec<xmltree::Element> {
        e.children
            .iter()
            .filter_map(|n| n.as_element().cloned())
            .collect()
    };
    let mut out = Vec::new();
    for response in children(&root) {
        let href = response
            .get_child("href")
            .and_then(|h| h.get_text())
            .unwrap()
            .into_owned();
        for propstat in children(&response).into_iter().filter(|e| e.name == "propstat") {
            let status = propstat
                .get_child("status")
                .and_then(|s| s.get_text())
                .unwrap()
                .into_owned();
            for prop in children(propstat.get_child("prop").unwrap()) {
                out.push((href.clone(), status.clone(), prop));
            }
        }
    }
    out
}

/// PROPFIND Depth 1 and 0, allprop and named properties: live ones with their values, dead
/// ones as stored, locks on the way, and a requested property that does not exist in a 404
/// `propstat` (RFC 4918 §9.1).
async fn dav_propfind_lists_every_property(db: Db) {
    let app = TestApp::spawn(db).await;
    let dav = Dav::with_token(&app);
    assert_eq!(dav.mkdir("personal-files/p").await, Outcome::Done);
    assert_eq!(dav.mkdir("personal-files/p/locked").await, Outcome::Done);
    assert_eq!(
        dav.write("personal-files/p/a & b.txt", b"12345").await,
        Outcome::Done
    );
    assert_eq!(
        dav.write("personal-files/p/locked/in.pdf", b"%PDF").await,
        Outcome::Done
    );
    let patch = r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:example"><D:set><D:prop><Z:color>red &amp; blue</Z:color></D:prop></D:set></D:propertyupdate>"#;
    let patched = dav
        .request("PROPPATCH", "personal-files/p/a & b.txt")
        .body(patch)
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::MULTI_STATUS);
    let lockinfo = r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>bob</D:owner></D:lockinfo>"#;
    let locked = dav
        .request("LOCK", "personal-files/p/locked/")
        .header("Timeout", "Second-300")
        .body(lockinfo)
        .send()
        .await
        .unwrap();
    assert_eq!(locked.status(), StatusCode::OK);
    let lock_token = locked.headers()["lock-token"]
        .to_str()
        .unwrap()
        .trim_matches(['<', '>'])
        .to_string();
    let file_uuid = app.uuid(&Auth::admin(), "personal-files/p/a & b.txt").await;

    // allprop (an empty body), Depth 1, on the folder named without its trailing slash.
    let response = dav
        .request("PROPFIND", "personal-files/p")
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::MULTI_STATUS);
    assert_eq!(response.headers()["content-location"], "/dav/personal-files/p/");
    let all = propstats(&response.text().await.unwrap());
    let value = |href: &str, name: &str| {
        all.iter()
            .find(|(h, s, p)| h == href && s == "HTTP/1.1 200 OK" && p.name == name)
            .map(|(_, _, p)| p.clone())
    };
    let hrefs: std::collections::BTreeSet<&str> = all.iter().map(|(h, _, _)| h.as_str()).collect();
    assert_eq!(
        hrefs.into_iter().collect::<Vec<_>>(),
        [
            "/dav/personal-files/p/",
            "/dav/personal-files/p/a%20%26%20b.txt",
            "/dav/personal-files/p/locked/"
        ]
    );
    let file = "/dav/personal-files/p/a%20%26%20b.txt";
    assert_eq!(value(file, "getcontentlength").unwrap().get_text().unwrap(), "5");
    assert_eq!(
        value(file, "getcontenttype").unwrap().get_text().unwrap(),
        "text/plain"
    );
    assert!(
        value(file, "getetag")
            .unwrap()
            .get_text()
            .is_some_and(|e| !e.is_empty())
    );
    assert!(
        value(file, "getlastmodified")
            .unwrap()
            .get_text()
            .unwrap()
            .ends_with(" GMT")
    );
    assert!(value(file, "resourcetype").unwrap().children.is_empty());
    let color = value(file, "color").expect("the dead property");
    assert_eq!(
        (color.namespace.as_deref(), color.get_text().unwrap().as_ref()),
        (Some("urn:example"), "red & blue")
    );
    let folder = value("/dav/personal-files/p/locked/", "resourcetype").unwrap();
    assert!(folder.get_child("collection").is_some());
    assert!(value("/dav/personal-files/p/locked/", "getcontentlength").is_none());
    assert_eq!(
        value("/dav/personal-files/p/", "supportedlock")
            .unwrap()
            .children
            .len(),
        2
    );
    let discovery = value("/dav/personal-files/p/locked/", "lockdiscovery").unwrap();
    let active = discovery.get_child("activelock").expect("the lock is discovered");
    assert!(
        active
            .get_child("lockscope")
            .unwrap()
            .get_child("shared")
            .is_some()
    );
    let href = active.get_child("locktoken").unwrap().get_child("href").unwrap();
    assert_eq!(href.get_text().unwrap(), lock_token);
    assert_eq!(
        active.get_child("timeout").unwrap().get_text().unwrap(),
        "Second-300"
    );
    assert!(
        value(file, "lockdiscovery").unwrap().children.is_empty(),
        "a sibling is not locked"
    );

    // Named properties, Depth 0: found ones in 200, the rest in 404, nothing else.
    let asked = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:oc="http://owncloud.org/ns" xmlns:Z="urn:example"><D:prop><D:getcontentlength/><oc:id/><Z:color/><Z:size/><D:creationdate/><D:current-user-principal/></D:prop></D:propfind>"#;
    let response = dav
        .request("PROPFIND", "personal-files/p/a & b.txt")
        .header("Depth", "0")
        .body(asked)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::MULTI_STATUS);
    let named = propstats(&response.text().await.unwrap());
    let mut seen: Vec<(String, String, String)> = named
        .iter()
        .map(|(h, s, p)| {
            (
                h.clone(),
                s.clone(),
                format!("{}{}", p.namespace.clone().unwrap_or_default(), p.name),
            )
        })
        .collect();
    seen.sort();
    let ok = "HTTP/1.1 200 OK".to_string();
    let missing = "HTTP/1.1 404 Not Found".to_string();
    let mut expected = vec![
        (file.to_string(), ok.clone(), "DAV:getcontentlength".to_string()),
        (
            file.to_string(),
            ok.clone(),
            "http://owncloud.org/nsid".to_string(),
        ),
        (file.to_string(), ok.clone(), "urn:examplecolor".to_string()),
        (file.to_string(), missing.clone(), "urn:examplesize".to_string()),
        (file.to_string(), missing.clone(), "DAV:creationdate".to_string()),
        (
            file.to_string(),
            ok.clone(),
            "DAV:current-user-principal".to_string(),
        ),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    let id = named.iter().find(|(_, _, p)| p.name == "id").unwrap();
    assert_eq!(id.2.get_text().unwrap(), file_uuid);

    // Inside the locked folder: a deep lock shows on what is below it.
    let response = dav
        .request("PROPFIND", "personal-files/p/locked/in.pdf")
        .header("Depth", "0")
        .body(r#"<D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/><D:getcontenttype/></D:prop></D:propfind>"#)
        .send()
        .await
        .unwrap();
    let inside = propstats(&response.text().await.unwrap());
    assert!(
        inside
            .iter()
            .any(|(_, _, p)| p.name == "getcontenttype" && p.get_text().unwrap() == "application/pdf")
    );
    let discovery = inside.iter().find(|(_, _, p)| p.name == "lockdiscovery").unwrap();
    assert!(
        discovery.2.get_child("activelock").is_some(),
        "the folder's lock covers its files"
    );

    // Missing paths and bad bodies keep their statuses.
    assert_eq!(
        dav.request("PROPFIND", "personal-files/nope/")
            .header("Depth", "1")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        dav.request("PROPFIND", "personal-files/p/")
            .header("Depth", "1")
            .body("<D:propfind xmlns:D=\"DAV:\">")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );
}

/// A large file PUT over WebDAV is committed before its MD5 is computed (`files::etags`): the
/// PUT answers without an ETag and the ETag worker fills it in. While it is pending, a request
/// that compares entity tags or shows `getetag` computes it first; one that does neither
/// shows no ETag and leaves it pending. A small file is hashed on the way. Every ETag shown,
/// on any protocol, is the content's MD5.
async fn dav_large_put_is_hashed_after_the_commit(db: Db) {
    use md5::Digest;
    let app = TestApp::spawn(db).await;
    let dav = Dav::with_token(&app);
    let quoted_md5 = |data: &[u8]| format!("\"{}\"", hex::encode(md5::Md5::digest(data)));
    let etag = |response: &reqwest::Response| {
        response
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_string())
    };

    let small: Vec<u8> = (0..2u32 << 20).map(|i| (i % 251) as u8).collect();
    let put = dav
        .request("PUT", "personal-files/small.bin")
        .body(small.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    assert_eq!(etag(&put), Some(quoted_md5(&small)), "hashed on the way");

    let large: Vec<u8> = (0..20u32 << 20).map(|i| (i % 241) as u8).collect();
    let md5 = quoted_md5(&large);
    let put = dav
        .request("PUT", "personal-files/large.bin")
        .body(large.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    if app.on_disk() {
        assert_eq!(etag(&put), None, "committed before its MD5");
    } else {
        // An object store hashes every body on the way: hashing later would read it back.
        assert_eq!(
            etag(&put),
            Some(md5.clone()),
            "an object store's blob is hashed on the way"
        );
    }
    let store = &app.app.store();
    let id = cells_core::records::NodeId::parse(&app.uuid(&Auth::admin(), "personal-files/large.bin").await)
        .unwrap();
    app.wait_for_etags().await;
    let head = dav
        .request("HEAD", "personal-files/large.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(etag(&head), Some(md5.clone()), "filled in by the worker");

    // Pending again, with no worker job: only the readers below can settle it.
    let make_pending = || async {
        let node = store.find_node(id).await.unwrap().unwrap();
        let blob = node.blob_id.clone().unwrap();
        let content = cells_store::Content {
            blob_id: &blob,
            size: node.size,
            etag: "",
            mtime: node.mtime,
            meta: None,
            data: None,
        };
        store
            .replace_content_if(id, &blob, content)
            .await
            .unwrap()
            .unwrap();
    };
    let is_pending = || async { store.find_node(id).await.unwrap().unwrap().etag.is_empty() };
    make_pending().await;
    let head = dav
        .request("HEAD", "personal-files/large.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(etag(&head), None);
    let got = dav
        .request("GET", "personal-files/large.bin")
        .header("Range", "bytes=0-9")
        .header("If-None-Match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.status(),
        StatusCode::NOT_MODIFIED,
        "If-None-Match: * matches any file"
    );
    let sizes = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getcontentlength/></D:prop></D:propfind>"#;
    let listed = dav
        .request("PROPFIND", "personal-files")
        .header("Depth", "1")
        .body(sizes)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status().as_u16(), 207);
    assert!(listed.text().await.unwrap().contains(&format!("{}", 20u32 << 20)));
    assert!(is_pending().await, "neither compared nor showed an ETag");

    // A comparison computes it first: the right tag matches, another does not.
    let got = dav
        .request("GET", "personal-files/large.bin")
        .header("If-None-Match", md5.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::NOT_MODIFIED);
    assert!(!is_pending().await);
    make_pending().await;
    let got = dav
        .request("GET", "personal-files/large.bin")
        .header("If-Match", "\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::PRECONDITION_FAILED);
    make_pending().await;
    let got = dav
        .request("GET", "personal-files/large.bin")
        .header("Range", "bytes=5-9")
        .header("If-Range", md5.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::PARTIAL_CONTENT, "If-Range holds");
    assert_eq!(etag(&got), Some(md5.clone()));
    assert_eq!(got.bytes().await.unwrap(), large[5..10]);

    // Showing it computes it, by name and in allprop.
    for body in [
        r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>"#,
        r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#,
    ] {
        make_pending().await;
        let shown = dav
            .request("PROPFIND", "personal-files/large.bin")
            .header("Depth", "0")
            .body(body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = format!("<D:getetag>{md5}</D:getetag>");
        assert!(shown.contains(&value), "{shown}");
        assert!(!is_pending().await);
    }

    // REST shows it too, computed on the spot.
    make_pending().await;
    let (_, stat) = app.stat(&Auth::admin(), "personal-files/large.bin").await;
    assert_eq!(format!("\"{}\"", stat["Nodes"][0]["Etag"].as_str().unwrap()), md5);
    assert_eq!(
        app.read(&Auth::admin(), "personal-files/large.bin").await.1,
        large
    );
}

/// `getetag` is the entity-tag of RFC 7232 §2.3, quotes included (RFC 4918 §15.6): the value
/// of the `ETag` header, whichever way the PROPFIND is answered (`dav::propfind` or
/// dav-server), so a client can send it back in `If-Match`.
async fn dav_getetag_is_the_etag_header(db: Db) {
    let app = TestApp::spawn(db).await;
    let dav = Dav::with_token(&app);
    assert_eq!(dav.mkdir("personal-files/e").await, Outcome::Done);
    assert_eq!(
        dav.write("personal-files/e/f.txt", b"tagged").await,
        Outcome::Done
    );
    let header = |response: &reqwest::Response| response.headers()["etag"].to_str().unwrap().to_string();
    let head = dav
        .request("HEAD", "personal-files/e/f.txt")
        .send()
        .await
        .unwrap();
    let file_tag = header(&head);
    assert!(file_tag.len() > 2 && file_tag.starts_with('"') && file_tag.ends_with('"'));
    let getetags = |body: String| -> Vec<(String, String)> {
        propstats(&body)
            .into_iter()
            .filter(|(_, status, p)| status == "HTTP/1.1 200 OK" && p.name == "getetag")
            .map(|(href, _, p)| (href, p.get_text().unwrap().into_owned()))
            .collect()
    };
    let propfind = |path: &'static str, depth: &'static str, body: &'static str| {
        let request = dav.request("PROPFIND", path).header("Depth", depth).body(body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::MULTI_STATUS);
            getetags(response.text().await.unwrap())
        }
    };
    // `include` is left to dav-server (`dav::propfind`), as is the root.
    let included = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/><D:include><D:getetag/></D:include></D:propfind>"#;
    let file = "/dav/personal-files/e/f.txt";
    for (depth, body) in [
        ("0", GETETAG),
        ("1", GETETAG),
        ("0", ""),
        ("0", included),
        ("1", included),
    ] {
        let path = if depth == "0" {
            "personal-files/e/f.txt"
        } else {
            "personal-files/e/"
        };
        let tags = propfind(path, depth, body).await;
        let shown = tags
            .iter()
            .find(|(href, _)| href == file)
            .map(|(_, tag)| tag.clone());
        assert_eq!(shown, Some(file_tag.clone()), "Depth {depth}, body {body:?}");
    }

    // A folder's tag is the same in its own PROPFIND and in its parent's, dav-server's root.
    let own = propfind("personal-files/", "0", GETETAG).await;
    let listed = propfind("", "1", GETETAG).await;
    let workspace = |tags: &[(String, String)]| {
        tags.iter()
            .find(|(href, _)| href == "/dav/personal-files/")
            .map(|(_, tag)| tag.clone())
            .unwrap()
    };
    assert!(workspace(&own).starts_with('"') && workspace(&own).ends_with('"'));
    assert_eq!(workspace(&own), workspace(&listed));

    // Echoed into If-Match, the shown tag guards a PUT; a stale one is refused.
    let put = |tag: String, body: &'static str| {
        dav.request("PUT", "personal-files/e/f.txt")
            .header("If-Match", tag)
            .body(body)
            .send()
    };
    assert_eq!(
        put(file_tag.clone(), "second").await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        put(file_tag, "third").await.unwrap().status(),
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        app.read(&Auth::admin(), "personal-files/e/f.txt").await.1,
        b"second"
    );
}

/// A PROPFIND's `If-Match`, `If-None-Match` and `If-Unmodified-Since` (RFC 7232 §3.1, §3.2,
/// §3.4) are evaluated, by either answerer: a client that lists only an unchanged resource
/// gets 412 once it has changed, and the `getetag` it listed is what matches.
async fn dav_propfind_honours_its_preconditions(db: Db) {
    let app = TestApp::spawn(db).await;
    let dav = Dav::with_token(&app);
    assert_eq!(dav.mkdir("personal-files/p").await, Outcome::Done);
    assert_eq!(dav.write("personal-files/p/f.txt", b"first").await, Outcome::Done);
    // `propname` is left to dav-server (`dav::propfind`); the precondition is the same.
    let names = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>"#;
    let propfind = |path: &'static str, condition: (&'static str, String), body: &'static str| {
        dav.request("PROPFIND", path)
            .header("Depth", "0")
            .header(condition.0, condition.1)
            .body(body)
            .send()
    };
    let listed = propfind(
        "personal-files/p/f.txt",
        ("If-None-Match", "\"none\"".into()),
        GETETAG,
    )
    .await
    .unwrap();
    assert_eq!(listed.status(), StatusCode::MULTI_STATUS);
    let tag = propstats(&listed.text().await.unwrap())
        .into_iter()
        .find(|(_, _, p)| p.name == "getetag")
        .map(|(_, _, p)| p.get_text().unwrap().into_owned())
        .unwrap();
    assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");

    for body in [GETETAG, names] {
        let status = |condition: (&'static str, String)| {
            let response = propfind("personal-files/p/f.txt", condition, body);
            async move { response.await.unwrap().status() }
        };
        assert_eq!(status(("If-Match", tag.clone())).await, StatusCode::MULTI_STATUS);
        assert_eq!(status(("If-Match", "*".into())).await, StatusCode::MULTI_STATUS);
        assert_eq!(
            status(("If-Match", "\"stale\"".into())).await,
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(
            status(("If-None-Match", tag.clone())).await,
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(
            status(("If-None-Match", "*".into())).await,
            StatusCode::PRECONDITION_FAILED
        );
        let long_ago = "Sun, 09 Sep 2001 01:46:40 GMT".to_string();
        assert_eq!(
            status(("If-Unmodified-Since", long_ago)).await,
            StatusCode::PRECONDITION_FAILED
        );
    }
    // Missing: `If-Match: *` fails (no current representation); without it, 404 as ever.
    let missing = |condition: (&'static str, String)| {
        let response = propfind("personal-files/p/none.txt", condition, GETETAG);
        async move { response.await.unwrap().status() }
    };
    assert_eq!(
        missing(("If-Match", "*".into())).await,
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        missing(("If-None-Match", "*".into())).await,
        StatusCode::NOT_FOUND
    );

    // Once the file changes, the listed tag no longer matches.
    assert_eq!(
        dav.write("personal-files/p/f.txt", b"second").await,
        Outcome::Done
    );
    let stale = propfind("personal-files/p/f.txt", ("If-Match", tag), GETETAG)
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
}
