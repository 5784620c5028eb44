//! The layering that the crate graph alone does not show: the protocol crates reach the
//! database only through `cells-core` (`App`'s store is private; `App::store` exists only with
//! the feature `test-support`, which only the binary's tests enable), and no source file grows
//! past 1,000 lines.

use std::path::{Path, PathBuf};

const ADAPTERS: [&str; 6] = ["http", "rest", "console", "dav", "s3", "sftp"];

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn adapters_reach_the_database_only_through_the_core() {
    let mut files = Vec::new();
    for adapter in ADAPTERS {
        sources(&crates_dir().join(adapter).join("src"), &mut files);
    }
    assert!(files.len() > 30, "found only {} files", files.len());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // `app.store…`, `app.store()`, or `.store` alone ending a line of a method chain.
        let offending: Vec<&str> = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .filter(|line| {
                line.contains(".store.") || line.contains(".store()") || line.trim_end().ends_with(".store")
            })
            .collect();
        assert!(
            offending.is_empty(),
            "{} reads the store: {offending:?}",
            file.display()
        );
    }
}

#[test]
fn no_source_file_over_a_thousand_lines() {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(crates_dir()).unwrap().flatten() {
        let src = entry.path().join("src");
        if src.is_dir() {
            sources(&src, &mut files);
        }
    }
    for file in files {
        let lines = std::fs::read_to_string(&file).unwrap().lines().count();
        assert!(lines <= 1000, "{} has {lines} lines", file.display());
    }
}
