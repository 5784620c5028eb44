//! Unit tests of `session`.

use super::listing::longname;
use super::*;

#[test]
fn paths_resolve_dots_and_never_climb_above_the_root() {
    assert_eq!(normalize(b".").unwrap(), "/");
    assert_eq!(normalize(b"").unwrap(), "/");
    assert_eq!(normalize(b"personal-files/a/../b").unwrap(), "/personal-files/b");
    assert_eq!(normalize(b"/../../etc/passwd").unwrap(), "/etc/passwd");
    assert_eq!(normalize(b"//personal-files//./x/").unwrap(), "/personal-files/x");
    assert!(normalize(b"/\xff").is_err());
}

#[test]
fn longname_looks_like_ls() {
    let attrs = Attrs {
        size: Some(1234),
        permissions: Some(FILE_MODE),
        times: Some((0, 1_700_000_000)),
        ..Attrs::default()
    };
    let line = longname("a.txt", &attrs, "admin", 1_700_000_100);
    assert_eq!(
        line,
        "-rw-r--r--    1 admin    admin        1234 Nov 14 22:13 a.txt"
    );
    let old = longname("a.txt", &attrs, "admin", 1_800_000_000);
    assert!(old.ends_with("Nov 14  2023 a.txt"), "{old}");
}

#[test]
fn errors_map_to_sftp_codes() {
    assert_eq!(status_of(&Error::NotFound("x".into())).0, Code::NoSuchFile);
    assert_eq!(
        status_of(&Error::ParentMissing("personal-files/a".into())).0,
        Code::NoSuchFile
    );
    assert_eq!(
        status_of(&Error::Forbidden("no".into())).0,
        Code::PermissionDenied
    );
    assert_eq!(status_of(&Error::Conflict("exists".into())).0, Code::Failure);
}
