//! Microbenchmark: resolving each kind of credential to a `Principal`.
//!
//! `cargo bench --bench credentials`. Two servers' worth of state on one SQLite file: one keeps
//! its auth epoch fresh (the cache is used, as in a running server), one does not (every check
//! reads the database). An Argon2id verification is measured beside them for scale.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use cells_core::App;
use cells_core::auth::{Client, Expiry, TokenRequest};
use cells_core::config::{Config, Overrides};
use cells_core::users::{self, UserSpec};
use cells_store::{Profile, TokenKind};
use criterion::{Criterion, criterion_group, criterion_main};

const PASSWORD: &str = "bench-password-1";

struct Fixture {
    app: Arc<App>,
    hard: String,
    sliding: String,
    password_hash: String,
}

async fn fixture(data: &std::path::Path, create: bool) -> Fixture {
    let config = Config::load(Overrides {
        data_dir: Some(data.to_path_buf()),
        ..Overrides::default()
    })
    .expect("config");
    let app = App::open(config).await.expect("open");
    if create {
        let spec = UserSpec {
            login: "bench",
            password: PASSWORD,
            profile: Profile::Standard,
            display_name: "",
            email: "",
        };
        users::create_user(&app, spec).await.expect("user");
    }
    let user = app.store().find_user_by_login("bench").await.unwrap().unwrap();
    let token = |expiry| {
        let app = app.clone();
        let user = user.clone();
        async move {
            let request = TokenRequest {
                user: &user,
                kind: TokenKind::Personal,
                label: "bench",
                expiry,
                max_lifetime: None,
                scopes: &[],
                created_by: "bench",
            };
            app.auth
                .create_token(&app.tree, request)
                .await
                .expect("token")
                .1
                .value
        }
    };
    let hard = token(Expiry::Hard(86_400)).await;
    let sliding = token(Expiry::Sliding(600)).await;
    Fixture {
        password_hash: user.password_hash.clone(),
        app,
        hard,
        sliding,
    }
}

fn credentials(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cached = runtime.block_on(fixture(dir.path(), true));
    let uncached = runtime.block_on(fixture(dir.path(), false));
    // Keep the first one's epoch fresh, as `cells start` does.
    let poller = cached.app.clone();
    runtime.spawn(async move {
        loop {
            poller.auth.poll_epoch().await;
            tokio::time::sleep(cells_core::auth::EPOCH_POLL).await;
        }
    });
    runtime.block_on(async { tokio::time::sleep(Duration::from_millis(200)).await });
    let client = Client {
        protocol: "bench",
        address: IpAddr::V4(Ipv4Addr::LOCALHOST),
    };

    for (name, fixture) in [("cache", &cached), ("database", &uncached)] {
        let mut group = c.benchmark_group(format!("principal/{name}"));
        let auth = &fixture.app.auth;
        group.bench_function("pat_hard_bearer", |b| {
            b.to_async(&runtime)
                .iter(|| async { auth.authenticate_bearer(&fixture.hard, client).await.unwrap() })
        });
        group.bench_function("pat_auto_refresh_bearer", |b| {
            b.to_async(&runtime)
                .iter(|| async { auth.authenticate_bearer(&fixture.sliding, client).await.unwrap() })
        });
        group.bench_function("basic_with_pat", |b| {
            b.to_async(&runtime).iter(|| async {
                auth.authenticate_password("bench", &fixture.hard, client)
                    .await
                    .unwrap()
            })
        });
        if name == "cache" {
            group.bench_function("basic_password_warm_cache", |b| {
                b.to_async(&runtime).iter(|| async {
                    auth.authenticate_password("bench", PASSWORD, client)
                        .await
                        .unwrap()
                })
            });
        }
        group.finish();
    }
    let mut group = c.benchmark_group("password");
    group.sample_size(10);
    group.bench_function("argon2id_verify", |b| {
        let hasher = cached.app.auth.hasher();
        b.to_async(&runtime)
            .iter(|| async { assert!(hasher.verify(PASSWORD, &cached.password_hash).await.unwrap()) })
    });
    group.finish();
}

criterion_group!(benches, credentials);
criterion_main!(benches);
