//! Generated inputs for every parser of untrusted input that is ours (property tests): none
//! may panic, and each keeps its own promise on whatever it accepts. XML bodies and Range lists
//! have theirs beside them (`http::xml`, `http::range`); the request-level ones (JWTs, SigV4
//! headers, S3 and WebDAV XML bodies, multipart forms) run against a live server in the
//! integration test `security::generated_garbage_never_crashes`.
//!
//! `CELLS_FUZZ_CASES` sets the number of cases per property (default 1,000): `bench/fuzz.sh`
//! runs them longer on a release build.

use proptest::prelude::*;

use cells_core::fuzz_cases as cases;

/// Text that looks like what each parser expects, often broken: the useful part of the input
/// space, which arbitrary strings rarely reach.
fn near(pieces: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            3 => proptest::sample::select(pieces).prop_map(str::to_string),
            1 => any::<char>().prop_map(|c| c.to_string()),
            1 => "[0-9]{1,25}",
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Personal access token values: only what the key made parses, and nothing panics.
    #[test]
    fn pat_values(text in near(&["cpat_", "A", "-", "_", "=", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"])) {
        let key = cells_core::auth::pat::PatKey::new(&[7u8; 32]);
        prop_assert!(key.parse(&text).is_none());
        let (_, made) = key.mint();
        let mut mutated: Vec<char> = made.chars().collect();
        if !text.is_empty() {
            let at = text.len() % mutated.len();
            mutated[at] = if mutated[at] == 'A' { 'B' } else { 'A' };
            let mutated: String = mutated.into_iter().collect();
            prop_assert!(key.parse(&mutated).is_none(), "a changed character is refused");
        }
    }

    /// Token scopes: a parsed scope names a node and a right; nothing panics.
    #[test]
    fn scopes(text in near(&["node:", ":", "r", "w", "rw", "00000000-0000-0000-0000-000000000000", ","])) {
        if let Ok(scope) = cells_core::auth::scope::Scope::parse(&text) {
            prop_assert!(scope.read || scope.write);
        }
    }

    /// Durations: a parsed one is positive and at most ten years.
    #[test]
    fn durations(text in near(&["s", "m", "h", "d", "-", "1", "99999999999999"]), bare in any::<bool>()) {
        if let Ok(seconds) = cells_core::duration::parse(&text, bare) {
            prop_assert!(seconds > 0 && seconds <= cells_core::auth::MAX_TOKEN_SECONDS);
        }
    }

    /// `Authorization: Basic …`: anything at all is parsed or refused, never a panic.
    #[test]
    fn basic_headers(text in near(&["Basic ", "basic", "YWxpY2U6cGFzcw==", ":", "=", "é"])) {
        let _ = cells_http::extract::parse_basic(&text);
    }

    /// A single Range of REST downloads: what parses lies inside the file.
    #[test]
    fn single_ranges(text in near(&["bytes=", "-", ",", "0", "18446744073709551615"]), size in 0u64..1_000_000) {
        if let Ok(Some((offset, length))) = cells_rest::api::content::parse_range(&text, size) {
            prop_assert!(length > 0 && offset.checked_add(length).is_some_and(|end| end <= size));
        }
    }

    /// Workspace paths: what parses has no empty, `.` or `..` segment and no NUL.
    #[test]
    fn tree_paths(text in near(&["personal-files", "common-files", "/", ".", "..", "%2f", "\u{0}", "a"])) {
        if let Ok(path) = cells_core::files::path::TreePath::parse(&text) {
            for name in path.names() {
                prop_assert!(!name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0']));
            }
        }
    }

    /// SFTP packets: any type byte and body parse or are refused, never a panic.
    #[test]
    fn sftp_packets(kind in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = cells_sftp::packet::Request::parse(kind, bytes::Bytes::from(body));
    }

    /// SFTP packets that begin well (a request id, then a length-prefixed string) and end
    /// anywhere: the fields past the end are refused, never read.
    #[test]
    fn sftp_truncated_packets(kind in 1u8..=210, id in any::<u32>(), len in any::<u32>(), tail in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(&len.to_be_bytes());
        body.extend_from_slice(&tail);
        let _ = cells_sftp::packet::Request::parse(kind, bytes::Bytes::from(body));
    }

    /// What S3 reads from a request before s3s does: the signed region and a presigned URL's
    /// lifetime, from any query and `Authorization` header.
    #[test]
    fn s3_request_heads(
        query in near(&["X-Amz-Credential=", "X-Amz-Expires=", "%2F", "/", "&", "=", "us-east-1", "aws4_request"]),
        authorization in near(&["AWS4-HMAC-SHA256 ", "Credential=", "/", ",", " ", "SignedHeaders="]),
    ) {
        let uri = format!("/io/x?{}", query.replace(['#', ' '], ""));
        let Ok(uri) = uri.parse::<axum::http::Uri>() else { return Ok(()); };
        let mut request = axum::http::Request::builder().uri(uri);
        if let Ok(value) = axum::http::HeaderValue::from_str(&authorization) {
            request = request.header("authorization", value);
        }
        let (parts, ()) = request.body(()).unwrap().into_parts();
        let _ = cells_s3::signed_region(&parts);
        let _ = cells_s3::presigned_expiry(&parts);
    }
}
