//! HTTP preconditions (RFC 7232 §3, in the order of §6) against a resource's current entity
//! tag and modification time: REST downloads and WebDAV PROPFIND (which dav-server does not
//! evaluate, `dav::precheck`) use them; dav-server evaluates them for every other DAV method.

use axum::http::{HeaderMap, StatusCode, header};

/// The target's current representation (`None` where the target does not exist): its entity
/// tag, bare (absent for the list of workspaces and while pending), and its modification time
/// in Unix seconds.
#[derive(Debug, Clone, Copy)]
pub struct Current<'a> {
    pub etag: Option<&'a str>,
    pub mtime: i64,
}

/// Whether the request has a condition that `evaluate` would look at: a lookup of the current
/// state is needed only then. `safe` is GET or HEAD, where `If-Modified-Since` applies too.
pub fn applies(headers: &HeaderMap, safe: bool) -> bool {
    headers.contains_key(header::IF_MATCH)
        || headers.contains_key(header::IF_NONE_MATCH)
        || headers.contains_key(header::IF_UNMODIFIED_SINCE)
        || (safe && headers.contains_key(header::IF_MODIFIED_SINCE))
}

/// RFC 7232 §6: `If-Match`, else `If-Unmodified-Since` (412 when false); then `If-None-Match`,
/// else, for GET and HEAD (`safe`), `If-Modified-Since`. A true `If-None-Match` or an
/// unmodified resource is 304 for GET and HEAD, and `If-None-Match` 412 for the rest.
pub fn evaluate(headers: &HeaderMap, current: Option<Current>, safe: bool) -> Option<StatusCode> {
    let failed = Some(StatusCode::PRECONDITION_FAILED);
    let etag = current.and_then(|c| c.etag);
    if let Some(value) = text(headers, header::IF_MATCH) {
        // §3.1: strong comparison; `*` is true when a current representation exists.
        let matches = match tags(&value) {
            Tags::Any => current.is_some(),
            Tags::List(list) => list.iter().any(|(weak, tag)| !weak && Some(*tag) == etag),
            Tags::Invalid => false,
        };
        if !matches {
            return failed;
        }
    } else if let Some(value) = text(headers, header::IF_UNMODIFIED_SINCE) {
        // §3.4: an invalid date is ignored; without a current representation the header is
        // ignored too (the method's own answer says the target is missing).
        if let (Some(since), Some(current)) = (unix_date(&value), current)
            && current.mtime > since
        {
            return failed;
        }
    }
    if let Some(value) = text(headers, header::IF_NONE_MATCH) {
        // §3.2: weak comparison.
        let matches = match tags(&value) {
            Tags::Any => current.is_some(),
            Tags::List(list) => list.iter().any(|(_, tag)| Some(*tag) == etag),
            Tags::Invalid => false,
        };
        if matches {
            return Some(if safe {
                StatusCode::NOT_MODIFIED
            } else {
                StatusCode::PRECONDITION_FAILED
            });
        }
    } else if safe
        && let Some(value) = text(headers, header::IF_MODIFIED_SINCE)
        && let (Some(since), Some(current)) = (unix_date(&value), current)
        && current.mtime <= since
    {
        // §3.3.
        return Some(StatusCode::NOT_MODIFIED);
    }
    None
}

/// An HTTP-date (RFC 7231 §7.1.1.1) in Unix seconds.
fn unix_date(value: &str) -> Option<i64> {
    let date = httpdate::parse_http_date(value).ok()?;
    Some(
        date.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    )
}

/// A header's value, or `None` when absent; several fields of a list header are one list
/// (RFC 7230 §3.2.2). A value that is not text is kept, as a list that matches nothing.
fn text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(&name)
        .iter()
        .map(|value| value.to_str().unwrap_or("\u{0}"))
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

#[derive(Debug, PartialEq, Eq)]
enum Tags<'a> {
    Any,
    /// (weak, opaque tag without its quotes)
    List(Vec<(bool, &'a str)>),
    Invalid,
}

/// `*` or a comma-separated list of entity-tags (RFC 7232 §2.3, §3.1): `"x"` or `W/"x"`,
/// where `x` may itself hold commas.
fn tags(value: &str) -> Tags<'_> {
    let value = value.trim();
    if value == "*" {
        return Tags::Any;
    }
    let mut list = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let (weak, quoted) = match rest.strip_prefix("W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let Some(inner) = quoted.strip_prefix('"') else {
            return Tags::Invalid;
        };
        let Some(end) = inner.find('"') else {
            return Tags::Invalid;
        };
        list.push((weak, &inner[..end]));
        rest = &inner[end + 1..];
        if !rest.trim_start_matches([' ', '\t']).is_empty() && !rest.trim_start().starts_with(',') {
            return Tags::Invalid;
        }
    }
    if list.is_empty() {
        Tags::Invalid
    } else {
        Tags::List(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_static(value));
        }
        map
    }

    const FILE: Option<Current<'static>> = Some(Current {
        etag: Some("abc"),
        mtime: 1_000_000_000,
    });
    const FAILED: Option<StatusCode> = Some(StatusCode::PRECONDITION_FAILED);

    #[test]
    fn entity_tags_are_parsed_as_lists() {
        assert_eq!(tags(" * "), Tags::Any);
        assert_eq!(tags(r#""a", W/"b""#), Tags::List(vec![(false, "a"), (true, "b")]));
        assert_eq!(tags(r#""a,b""#), Tags::List(vec![(false, "a,b")]));
        for bad in ["", "abc", r#""open"#, r#""a" junk"#, "W/", ","] {
            assert_eq!(tags(bad), Tags::Invalid, "{bad}");
        }
    }

    #[test]
    fn if_match_compares_strongly() {
        assert_eq!(
            evaluate(&headers(&[(header::IF_MATCH, r#""abc""#)]), FILE, false),
            None
        );
        assert_eq!(
            evaluate(&headers(&[(header::IF_MATCH, r#""x", "abc""#)]), FILE, false),
            None
        );
        assert_eq!(evaluate(&headers(&[(header::IF_MATCH, "*")]), FILE, false), None);
        assert_eq!(
            evaluate(&headers(&[(header::IF_MATCH, r#"W/"abc""#)]), FILE, false),
            FAILED
        );
        assert_eq!(
            evaluate(&headers(&[(header::IF_MATCH, r#""other""#)]), FILE, false),
            FAILED
        );
        assert_eq!(
            evaluate(&headers(&[(header::IF_MATCH, "abc")]), FILE, false),
            FAILED
        );
        assert_eq!(
            evaluate(&headers(&[(header::IF_MATCH, "*")]), None, false),
            FAILED
        );
        // A pending ETag matches no tag, only `*`.
        let pending = Some(Current { etag: None, mtime: 0 });
        assert_eq!(
            evaluate(&headers(&[(header::IF_MATCH, r#""""#)]), pending, false),
            FAILED
        );
        assert_eq!(
            evaluate(&headers(&[(header::IF_MATCH, "*")]), pending, false),
            None
        );
    }

    #[test]
    fn if_none_match_compares_weakly_and_fails_on_a_match() {
        assert_eq!(
            evaluate(&headers(&[(header::IF_NONE_MATCH, r#"W/"abc""#)]), FILE, false),
            FAILED
        );
        assert_eq!(
            evaluate(&headers(&[(header::IF_NONE_MATCH, "*")]), FILE, false),
            FAILED
        );
        assert_eq!(
            evaluate(&headers(&[(header::IF_NONE_MATCH, r#""other""#)]), FILE, false),
            None
        );
        assert_eq!(
            evaluate(&headers(&[(header::IF_NONE_MATCH, "*")]), None, false),
            None
        );
    }

    #[test]
    fn if_unmodified_since_yields_to_if_match() {
        // 2001-09-09T01:46:40Z is 1_000_000_000.
        let before = "Sun, 09 Sep 2001 01:46:39 GMT";
        let at = "Sun, 09 Sep 2001 01:46:40 GMT";
        assert_eq!(
            evaluate(&headers(&[(header::IF_UNMODIFIED_SINCE, at)]), FILE, false),
            None
        );
        assert_eq!(
            evaluate(&headers(&[(header::IF_UNMODIFIED_SINCE, before)]), FILE, false),
            FAILED
        );
        assert_eq!(
            evaluate(
                &headers(&[(header::IF_UNMODIFIED_SINCE, "yesterday")]),
                FILE,
                false
            ),
            None
        );
        let both = headers(&[
            (header::IF_MATCH, r#""abc""#),
            (header::IF_UNMODIFIED_SINCE, before),
        ]);
        assert_eq!(evaluate(&both, FILE, false), None);
    }

    #[test]
    fn repeated_fields_are_one_list() {
        let twice = headers(&[(header::IF_MATCH, r#""x""#), (header::IF_MATCH, r#""abc""#)]);
        assert_eq!(evaluate(&twice, FILE, false), None);
        let twice = headers(&[
            (header::IF_NONE_MATCH, r#""x""#),
            (header::IF_NONE_MATCH, r#""abc""#),
        ]);
        assert_eq!(evaluate(&twice, FILE, false), FAILED);
    }

    #[test]
    fn get_and_head_get_304() {
        let tag = headers(&[(header::IF_NONE_MATCH, r#"W/"abc""#)]);
        assert_eq!(evaluate(&tag, FILE, true), Some(StatusCode::NOT_MODIFIED));
        let at = headers(&[(header::IF_MODIFIED_SINCE, "Sun, 09 Sep 2001 01:46:40 GMT")]);
        assert_eq!(evaluate(&at, FILE, true), Some(StatusCode::NOT_MODIFIED));
        assert_eq!(evaluate(&at, FILE, false), None);
        let before = headers(&[(header::IF_MODIFIED_SINCE, "Sun, 09 Sep 2001 01:46:39 GMT")]);
        assert_eq!(evaluate(&before, FILE, true), None);
        // If-None-Match decides alone when present (§3.3).
        let both = headers(&[
            (header::IF_NONE_MATCH, r#""other""#),
            (header::IF_MODIFIED_SINCE, "Sun, 09 Sep 2001 01:46:40 GMT"),
        ]);
        assert_eq!(evaluate(&both, FILE, true), None);
        assert!(applies(&at, true) && !applies(&at, false));
    }
}
