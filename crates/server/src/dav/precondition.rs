//! The HTTP preconditions of a PROPFIND (RFC 7232 §3.1, §3.2, §3.4, in the order of §6),
//! which dav-server does not evaluate for that method and `propfind::answer` must not skip.
//!
//! Every other method's conditions are dav-server's own. The `If` header (RFC 4918 §10.4) of a
//! PROPFIND stays unevaluated, as in dav-server: it guards writes with lock tokens, and a
//! PROPFIND writes nothing.

use axum::http::{HeaderMap, StatusCode, header};

use super::fs::etag_of;
use crate::SharedApp;
use crate::auth::principal::Principal;
use crate::error::Error;
use crate::files::path::TreePath;

/// The target's current representation (`None` where the target does not exist): its entity
/// tag, bare (absent for the list of workspaces and while pending), and its modification time
/// in Unix seconds.
#[derive(Debug, Clone, Copy)]
struct Current<'a> {
    etag: Option<&'a str>,
    mtime: i64,
}

/// `Some(412)` when a PROPFIND of `path` (`None`: the list of workspaces) may not be answered.
/// Only a request with a condition costs a lookup; it computes a pending ETag.
pub async fn propfind(
    app: &SharedApp,
    headers: &HeaderMap,
    principal: &Principal,
    path: Option<&TreePath>,
) -> Option<StatusCode> {
    let conditional = [
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_UNMODIFIED_SINCE,
    ]
    .iter()
    .any(|name| headers.contains_key(name));
    if !conditional {
        return None;
    }
    let Some(path) = path else {
        return evaluate(headers, Some(Current { etag: None, mtime: 0 }));
    };
    match app.tree.stat(principal, path).await {
        Ok(entry) => {
            let etag = etag_of(&entry.node);
            evaluate(
                headers,
                Some(Current {
                    etag: Some(etag.as_str()).filter(|e| !e.is_empty()),
                    mtime: entry.node.mtime,
                }),
            )
        }
        // Missing or invisible alike (RFC 7232 §3.1: `If-Match` fails without a current
        // representation); any other failure is answered by the PROPFIND itself.
        Err(Error::NotFound(_)) => evaluate(headers, None),
        Err(_) => None,
    }
}

/// RFC 7232 §6 for a method other than GET and HEAD: `If-Match`, else `If-Unmodified-Since`;
/// then `If-None-Match` (`If-Modified-Since` applies to GET and HEAD only).
fn evaluate(headers: &HeaderMap, current: Option<Current>) -> Option<StatusCode> {
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
        if let (Ok(date), Some(current)) = (httpdate::parse_http_date(&value), current) {
            let since = date
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            if current.mtime > since {
                return failed;
            }
        }
    }
    if let Some(value) = text(headers, header::IF_NONE_MATCH) {
        // §3.2: weak comparison; a match is 412 for any method but GET and HEAD.
        let matches = match tags(&value) {
            Tags::Any => current.is_some(),
            Tags::List(list) => list.iter().any(|(_, tag)| Some(*tag) == etag),
            Tags::Invalid => false,
        };
        if matches {
            return failed;
        }
    }
    None
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
        assert_eq!(evaluate(&headers(&[(header::IF_MATCH, r#""abc""#)]), FILE), None);
        assert_eq!(
            evaluate(&headers(&[(header::IF_MATCH, r#""x", "abc""#)]), FILE),
            None
        );
        assert_eq!(evaluate(&headers(&[(header::IF_MATCH, "*")]), FILE), None);
        assert_eq!(
            evaluate(&headers(&[(header::IF_MATCH, r#"W/"abc""#)]), FILE),
            FAILED
        );
        assert_eq!(
            evaluate(&headers(&[(header::IF_MATCH, r#""other""#)]), FILE),
            FAILED
        );
        assert_eq!(evaluate(&headers(&[(header::IF_MATCH, "abc")]), FILE), FAILED);
        assert_eq!(evaluate(&headers(&[(header::IF_MATCH, "*")]), None), FAILED);
        // A pending ETag matches no tag, only `*`.
        let pending = Some(Current { etag: None, mtime: 0 });
        assert_eq!(
            evaluate(&headers(&[(header::IF_MATCH, r#""""#)]), pending),
            FAILED
        );
        assert_eq!(evaluate(&headers(&[(header::IF_MATCH, "*")]), pending), None);
    }

    #[test]
    fn if_none_match_compares_weakly_and_fails_on_a_match() {
        assert_eq!(
            evaluate(&headers(&[(header::IF_NONE_MATCH, r#"W/"abc""#)]), FILE),
            FAILED
        );
        assert_eq!(evaluate(&headers(&[(header::IF_NONE_MATCH, "*")]), FILE), FAILED);
        assert_eq!(
            evaluate(&headers(&[(header::IF_NONE_MATCH, r#""other""#)]), FILE),
            None
        );
        assert_eq!(evaluate(&headers(&[(header::IF_NONE_MATCH, "*")]), None), None);
    }

    #[test]
    fn if_unmodified_since_yields_to_if_match() {
        // 2001-09-09T01:46:40Z is 1_000_000_000.
        let before = "Sun, 09 Sep 2001 01:46:39 GMT";
        let at = "Sun, 09 Sep 2001 01:46:40 GMT";
        assert_eq!(
            evaluate(&headers(&[(header::IF_UNMODIFIED_SINCE, at)]), FILE),
            None
        );
        assert_eq!(
            evaluate(&headers(&[(header::IF_UNMODIFIED_SINCE, before)]), FILE),
            FAILED
        );
        assert_eq!(
            evaluate(&headers(&[(header::IF_UNMODIFIED_SINCE, "yesterday")]), FILE),
            None
        );
        let both = headers(&[
            (header::IF_MATCH, r#""abc""#),
            (header::IF_UNMODIFIED_SINCE, before),
        ]);
        assert_eq!(evaluate(&both, FILE), None);
    }

    #[test]
    fn repeated_fields_are_one_list() {
        let twice = headers(&[(header::IF_MATCH, r#""x""#), (header::IF_MATCH, r#""abc""#)]);
        assert_eq!(evaluate(&twice, FILE), None);
        let twice = headers(&[
            (header::IF_NONE_MATCH, r#""x""#),
            (header::IF_NONE_MATCH, r#""abc""#),
        ]);
        assert_eq!(evaluate(&twice, FILE), FAILED);
    }
}
