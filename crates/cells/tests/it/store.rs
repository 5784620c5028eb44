//! The store under concurrent writers: group commits give every writer its own result, and
//! path walks (on SQLite, on the caller's thread) see each write once it has committed.

use cells_store::{Content, NewNode, NodeId, NodeKind, StoreError};
use uuid::Uuid;

use crate::backend_tests;
use crate::harness::{Db, TestApp};

backend_tests!(
    group_commits_give_each_writer_its_own_result,
    failed_commits_of_lone_writes_are_errors,
    walks_see_exactly_what_is_committed,
    one_node_sweeps_a_blob_store_and_only_old_leftovers,
);

/// Writers that run in one batch (on SQLite) or side by side (on PostgreSQL) each see their
/// own outcome: one creation per name wins and the others are told it exists, a creation
/// under a missing folder fails without taking the others down, and every overwrite of the
/// winners lands.
async fn group_commits_give_each_writer_its_own_result(db: Db) {
    let app = TestApp::spawn(db).await;
    let store = app.app.store().clone();
    let root = store.ensure_root("common-files", None).await.unwrap();
    let missing = NodeId::random();

    let creations = (0..64).map(|i| {
        let store = store.clone();
        // 48 writers on 16 names (three each), and 16 under a folder that does not exist.
        let (parent, name) = if i < 48 {
            (root.id, format!("n{:02}", i % 16))
        } else {
            (missing, format!("orphan{i}"))
        };
        tokio::spawn(async move {
            let blob = format!("blob-{i}");
            let created = store
                .create_node(NewNode {
                    parent_id: parent,
                    name: &name,
                    kind: NodeKind::Leaf,
                    size: 1,
                    etag: "e1",
                    blob_id: Some(&blob),
                    mtime: 1,
                    meta: None,
                    data: Some(b"v1"),
                })
                .await;
            (i, created)
        })
    });
    let mut winners = Vec::new();
    let (mut conflicts, mut refused) = (0, 0);
    for task in futures_util::future::join_all(creations).await {
        match task.unwrap() {
            (i, Ok(node)) => {
                assert!(i < 48, "a node was made under a missing folder");
                winners.push(node);
            }
            (i, Err(StoreError::Conflict(_))) if i < 48 => conflicts += 1,
            (i, Err(error)) => {
                assert!(i >= 48, "writer {i} failed: {error}");
                refused += 1;
            }
        }
    }
    assert_eq!((winners.len(), conflicts, refused), (16, 32, 16));
    let children = store.list_children(root.id).await.unwrap();
    assert_eq!(children.len(), 16);

    // Content kept in the row comes with a walk to the file, and by id while it is current.
    let first = &winners[0];
    let walked = store.walk(&root, &[first.name.as_str()]).await.unwrap();
    assert_eq!(walked[1].data.as_deref(), Some(&b"v1"[..]));
    assert_eq!(children[0].data, None, "listings do not carry content");
    let old_blob = first.blob_id.as_deref().unwrap();
    let data = store.find_data(first.id, old_blob).await.unwrap();
    assert_eq!(data.as_deref(), Some(&b"v1"[..]));

    // Half the overwrites keep content in the row, half point at a blob (clearing it).
    let overwrites = winners.iter().enumerate().map(|(i, node)| {
        let store = store.clone();
        let (id, old) = (node.id, node.blob_id.clone().unwrap());
        tokio::spawn(async move {
            let blob = format!("{old}-v2");
            let content = Content {
                blob_id: &blob,
                size: 2,
                etag: "e2",
                mtime: 2,
                meta: None,
                data: (i % 2 == 0).then_some(&b"v2"[..]),
            };
            let swapped = store.replace_content_if(id, &old, content).await.unwrap();
            // The same swap again finds the new blob in place and changes nothing.
            let again = store.replace_content_if(id, &old, content).await.unwrap();
            (swapped, again)
        })
    });
    for task in futures_util::future::join_all(overwrites).await {
        let (swapped, again) = task.unwrap();
        let node = swapped.expect("the swap lands");
        assert_eq!((node.size, node.etag.as_str()), (2, "e2"));
        assert!(again.is_none());
    }
    let children = store.list_children(root.id).await.unwrap();
    assert!(children.iter().all(|n| n.etag == "e2"), "{children:?}");
    for (i, node) in winners.iter().enumerate() {
        let old = node.blob_id.as_deref().unwrap();
        assert_eq!(store.find_data(node.id, old).await.unwrap(), None, "stale");
        let current = store.find_data(node.id, &format!("{old}-v2")).await.unwrap();
        let expected = (i % 2 == 0).then_some(&b"v2"[..]);
        assert_eq!(current.as_deref(), expected);
    }
}

/// Why the store reads the rows of a write that may run outside a transaction with `fetch_all`
/// (`cells_store`'s `Returned`): such a write commits when its statement ends, and a commit that
/// fails (here a deferred foreign key, checked at commit) is then an error with nothing kept.
/// `fetch_one` hands back the row first: on SQLite it answers `Ok` for a write that was not
/// kept, since sqlx drops the error of the reset that commits.
async fn failed_commits_of_lone_writes_are_errors(db: Db) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let url = match &db {
        Db::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()),
        Db::Postgres { url, .. } => url.clone(),
    };
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    if matches!(db, Db::Sqlite) {
        sqlx::raw_sql("PRAGMA foreign_keys = ON")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    sqlx::raw_sql(
        "CREATE TABLE parents (id TEXT PRIMARY KEY); \
         CREATE TABLE children (id TEXT PRIMARY KEY, \
             parent_id TEXT REFERENCES parents(id) DEFERRABLE INITIALLY DEFERRED)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let orphan = "INSERT INTO children (id, parent_id) VALUES ($1, 'missing') RETURNING id";

    let read_all: Result<Vec<(String,)>, _> = sqlx::query_as(orphan).bind("a").fetch_all(&mut conn).await;
    assert!(read_all.is_err(), "the failed commit is reported: {read_all:?}");
    assert_eq!(kept(&mut conn).await, 0);

    if matches!(db, Db::Sqlite) {
        let read_one: Result<(String,), _> = sqlx::query_as(orphan).bind("b").fetch_one(&mut conn).await;
        assert!(read_one.is_ok(), "fetch_one answers before the commit");
        assert_eq!(
            kept(&mut conn).await,
            0,
            "and the write it answered for is not there"
        );
    }
}

/// Rows in the `children` table of `failed_commits_of_lone_writes_are_errors`.
async fn kept(conn: &mut sqlx::AnyConnection) -> i64 {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM children")
        .fetch_one(conn)
        .await
        .unwrap();
    count
}

/// A path walk (on SQLite through `local_reads`, read-only connections beside sqlx's) sees
/// every write as soon as the write has returned, never a transaction that has not committed,
/// and does not wait for one that holds the database's write lock.
async fn walks_see_exactly_what_is_committed(db: Db) {
    use sqlx::Connection;
    let app = TestApp::spawn(db.clone()).await;
    let store = app.app.store().clone();
    let root = store.ensure_root("common-files", None).await.unwrap();
    fn leaf<'a>(parent_id: NodeId, name: &'a str, data: &'static [u8]) -> NewNode<'a> {
        NewNode {
            parent_id,
            name,
            kind: NodeKind::Leaf,
            size: data.len() as i64,
            etag: "e",
            blob_id: Some("inline-walk"),
            mtime: 1,
            meta: None,
            data: Some(data),
        }
    }
    let folder = store
        .create_node(NewNode {
            kind: NodeKind::Collection,
            size: 0,
            blob_id: None,
            data: None,
            ..leaf(root.id, "folder", b"")
        })
        .await
        .unwrap();
    let names = |chain: Vec<cells_store::Node>| chain.into_iter().map(|n| n.name).collect::<Vec<_>>();

    for i in 0..50 {
        let name = format!("f{i}");
        let created = store.create_node(leaf(folder.id, &name, b"hello")).await.unwrap();
        let chain = store.walk(&root, &["folder", &name]).await.unwrap();
        assert_eq!(chain.len(), 3, "file {i} is found right after its creation");
        assert_eq!(chain[2].id, created.id);
        assert_eq!(chain[2].data.as_deref(), Some(&b"hello"[..]), "with its content");
        let to_write = store.walk_to_write(&root, &["folder", &name]).await.unwrap();
        assert_eq!(to_write[2].data, None, "walk_to_write leaves the content out");
    }
    let moved = store.walk(&root, &["folder", "f7"]).await.unwrap()[2].clone();
    store.move_node(moved.id, folder.id, "renamed").await.unwrap();
    assert_eq!(
        names(store.walk(&root, &["folder", "f7"]).await.unwrap()),
        ["common-files", "folder"],
        "the old name is gone once the move returned"
    );
    assert_eq!(
        store.walk(&root, &["folder", "renamed"]).await.unwrap()[2].id,
        moved.id
    );
    store.delete_subtree(folder.id).await.unwrap();
    assert_eq!(
        names(store.walk(&root, &["folder", "f1"]).await.unwrap()),
        ["common-files"]
    );

    // Another connection holds the write lock with a row it has not committed: a walk
    // answers at once with what is committed, and sees the row only after the commit.
    let url = match &db {
        Db::Sqlite => format!("sqlite://{}?mode=rwc", app.data.join("cells.db").display()),
        Db::Postgres { url, .. } => url.clone(),
    };
    let mut other = sqlx::AnyConnection::connect(&url).await.unwrap();
    let begin = if matches!(db, Db::Sqlite) {
        "BEGIN IMMEDIATE"
    } else {
        "BEGIN"
    };
    sqlx::raw_sql(begin).execute(&mut other).await.unwrap();
    sqlx::query(
        "INSERT INTO nodes (id, parent_id, name, kind, size, mtime, etag, created_at) \
         VALUES ($1, $2, 'pending', 'LEAF', 0, 1, 'e', 1)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(root.id.to_string())
    .execute(&mut other)
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let chain = store.walk(&root, &["pending"]).await.unwrap();
    assert_eq!(chain.len(), 1, "an uncommitted row is not seen");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "the walk waited for the writer: {:?}",
        started.elapsed()
    );
    sqlx::raw_sql("COMMIT").execute(&mut other).await.unwrap();
    assert_eq!(store.walk(&root, &["pending"]).await.unwrap().len(), 2);
    app.stop().await;
}

/// Issue 31, item 5: leftovers were swept only at start. The sweep while serving runs on the
/// node that holds the store's lease (another node of the same store is told no), removes an
/// orphan blob once it is old enough, and leaves a fresh one (it may be about to be named).
async fn one_node_sweeps_a_blob_store_and_only_old_leftovers(db: Db) {
    let node_a = TestApp::spawn(db).await;
    let node_b = node_a.sibling().await;
    match node_a.on_disk() {
        true => {
            let shard = node_a.data.join("blobs").join("ab");
            std::fs::create_dir_all(&shard).unwrap();
            let old = shard.join("ab0c6a2e-1b4a-4c47-9a55-7d3d1d7e2f10");
            let fresh = shard.join("ab1c6a2e-1b4a-4c47-9a55-7d3d1d7e2f10");
            std::fs::write(&old, b"orphan").unwrap();
            std::fs::write(&fresh, b"orphan").unwrap();
            let long_ago = std::time::SystemTime::now() - cells_core::files::SWEEP_AGE * 2;
            std::fs::File::options()
                .write(true)
                .open(&old)
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
            let report = node_a
                .app
                .tree
                .sweep_while_serving(&node_a.app.node_id)
                .await
                .unwrap();
            assert_eq!(
                report.map(|r| r.orphan_blobs),
                Some(1),
                "node A holds the lease and sweeps"
            );
            assert!(!old.exists() && fresh.exists());
        }
        // An object store's times are the store's: a fresh orphan is left, the sweep runs.
        false => {
            let orphan = node_a
                .app
                .tree
                .blobs()
                .put(
                    cells_core::files::blob::bytes_stream("orphan".into()),
                    Default::default(),
                )
                .await
                .unwrap();
            let report = node_a
                .app
                .tree
                .sweep_while_serving(&node_a.app.node_id)
                .await
                .unwrap();
            assert_eq!(
                report.map(|r| r.orphan_blobs),
                Some(0),
                "node A holds the lease and sweeps; a fresh orphan is too young to go"
            );
            assert_eq!(node_a.blob_files().await, 1, "{orphan:?} stays");
        }
    }
    let other = node_b
        .app
        .tree
        .sweep_while_serving(&node_b.app.node_id)
        .await
        .unwrap();
    assert!(other.is_none(), "node B shares the store: A holds its lease");
    // The store's own lease calls, directly: taken once, renewed by its holder, free after release.
    let store = node_a.app.store();
    assert!(store.take_lease("test", "a", 60).await.unwrap());
    assert!(!store.take_lease("test", "b", 60).await.unwrap());
    assert!(store.take_lease("test", "a", 60).await.unwrap());
    store.release_lease("test", "a").await.unwrap();
    assert!(store.take_lease("test", "b", 60).await.unwrap());
    assert!(store.take_lease("expired", "a", -1).await.unwrap());
    assert!(
        store.take_lease("expired", "b", 60).await.unwrap(),
        "an expired lease is free"
    );
    node_b.stop_sibling().await;
}
