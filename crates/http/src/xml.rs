//! The shape check every XML request body passes before a parser builds a tree from it.
//!
//! The tree builders we run on request bodies (xmltree, inside dav-server and `dav::propfind`)
//! recurse once per nested element, so a small body of a few thousand nested elements would
//! exhaust a worker's stack and abort the whole process. This scanner walks the bytes once,
//! without recursion, and refuses a body nested deeper than `MAX_DEPTH`, one with more than
//! `MAX_ELEMENTS` elements, one with a document type declaration (no WebDAV or S3 body has
//! one, and its entities are the classic expansion bomb), or one not in UTF-8. It does not validate: a body it lets
//! through may still be refused by the parser, which then sees at most `MAX_DEPTH` levels.

/// Deepest element nesting accepted. WebDAV bodies are 3 or 4 levels deep; dead properties
/// (PROPPATCH values) may hold some XML of their own.
pub const MAX_DEPTH: usize = 64;
/// Most elements accepted in one body.
pub const MAX_ELEMENTS: usize = 20_000;

/// Why a body was refused; its `Display` is the client's explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("XML body nested deeper than {MAX_DEPTH} elements")]
    TooDeep,
    #[error("XML body with more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    #[error("XML body with a document type declaration")]
    Doctype,
    #[error("XML body with an unterminated tag, comment or section")]
    Unterminated,
    #[error("XML body that is not UTF-8")]
    NotUtf8,
}

/// Check the nesting of `body` (see the module comment). Text outside tags is skipped.
///
/// The body must be UTF-8 without NUL: the parser would decode a UTF-16 or UTF-32 body (byte
/// order mark, or a declaration), where markup the byte scan cannot see could nest deeply.
/// (A body declared Latin-1 passes only while it is also valid UTF-8; WebDAV clients send
/// UTF-8.)
pub fn check(body: &[u8]) -> Result<(), Refusal> {
    if std::str::from_utf8(body).is_err() || body.contains(&0) {
        return Err(Refusal::NotUtf8);
    }
    if declares_wide_encoding(body) {
        return Err(Refusal::NotUtf8);
    }
    let mut depth = 0usize;
    let mut elements = 0usize;
    let mut at = 0usize;
    while let Some(offset) = body[at..].iter().position(|&b| b == b'<') {
        let tag = at + offset;
        let rest = &body[tag + 1..];
        at = if rest.starts_with(b"!--") {
            tag + 4 + find(&rest[3..], b"-->")? + 3
        } else if rest.starts_with(b"![CDATA[") {
            tag + 9 + find(&rest[8..], b"]]>")? + 3
        } else if rest.starts_with(b"!") {
            return Err(Refusal::Doctype);
        } else if rest.starts_with(b"?") {
            tag + 2 + find(&rest[1..], b"?>")? + 2
        } else if rest.starts_with(b"/") {
            depth = depth.saturating_sub(1);
            tag + 1 + find(rest, b">")? + 1
        } else {
            let end = tag_end(rest)?;
            elements += 1;
            if elements > MAX_ELEMENTS {
                return Err(Refusal::TooManyElements);
            }
            if end == 0 || rest[end - 1] != b'/' {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Refusal::TooDeep);
                }
            }
            tag + 1 + end + 1
        };
    }
    Ok(())
}

/// Whether the XML declaration names an encoding of two or four bytes per unit.
fn declares_wide_encoding(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    let text = text.trim_start_matches('\u{feff}').trim_start();
    let Some(declaration) = text
        .strip_prefix("<?xml")
        .and_then(|rest| rest.split("?>").next())
    else {
        return false;
    };
    let declaration = declaration.to_ascii_lowercase();
    [
        "utf-16", "utf16", "utf-32", "utf32", "ucs-2", "ucs-4", "ucs2", "ucs4",
    ]
    .iter()
    .any(|wide| declaration.contains(wide))
}

/// Offset of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Result<usize, Refusal> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
        .ok_or(Refusal::Unterminated)
}

/// Offset of the `>` that closes a start tag, skipping quoted attribute values (which may
/// hold a `>`).
fn tag_end(tag: &[u8]) -> Result<usize, Refusal> {
    let mut quote = None;
    for (offset, &byte) in tag.iter().enumerate() {
        match (quote, byte) {
            (None, b'"' | b'\'') => quote = Some(byte),
            (Some(open), _) if byte == open => quote = None,
            (None, b'>') => return Ok(offset),
            _ => {}
        }
    }
    Err(Refusal::Unterminated)
}

#[cfg(test)]
mod tests {
    use super::{MAX_DEPTH, MAX_ELEMENTS, Refusal, check};
    use proptest::prelude::*;

    fn nested(depth: usize) -> String {
        format!(
            "<?xml version=\"1.0\"?><propfind xmlns=\"DAV:\"><prop>{}{}</prop></propfind>",
            "<a x='>'>".repeat(depth),
            "</a>".repeat(depth)
        )
    }

    #[test]
    fn ordinary_bodies_pass() {
        for body in [
            &b""[..],
            b"<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<D:propfind xmlns:D=\"DAV:\"><D:allprop/></D:propfind>",
            b"<D:lockinfo xmlns:D='DAV:'><D:lockscope><D:exclusive/></D:lockscope><D:owner><D:href>a > b</D:href></D:owner></D:lockinfo>",
            b"<!-- <a><a><a> --><x><![CDATA[<<<<]]></x>",
            b"<Delete><Object><Key>a/b</Key></Object><Quiet>true</Quiet></Delete>",
        ] {
            assert_eq!(check(body), Ok(()), "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(check(nested(MAX_DEPTH - 2).as_bytes()), Ok(()));
    }

    #[test]
    fn deep_large_and_typed_bodies_are_refused() {
        assert_eq!(check(nested(MAX_DEPTH - 1).as_bytes()), Err(Refusal::TooDeep));
        // The body of the reported crash: 2,000 nested elements in 14 KB.
        assert_eq!(check(nested(2000).as_bytes()), Err(Refusal::TooDeep));
        // Unclosed start tags count as nesting too.
        assert_eq!(check("<a>".repeat(100).as_bytes()), Err(Refusal::TooDeep));
        let wide = format!("<r>{}</r>", "<a/>".repeat(MAX_ELEMENTS));
        assert_eq!(check(wide.as_bytes()), Err(Refusal::TooManyElements));
        let bomb = b"<!DOCTYPE l [<!ENTITY a \"aaaa\">]><propfind>&a;</propfind>";
        assert_eq!(check(bomb), Err(Refusal::Doctype));
        assert_eq!(check(b"<a><!-- never closed"), Err(Refusal::Unterminated));
        // UTF-16 (by byte order mark, or declared): markup the byte scan cannot see.
        let mut utf16 = vec![0xFF, 0xFE];
        for unit in "<r a=\"\u{2722}\"><a></a>'</r>".encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(check(&utf16), Err(Refusal::NotUtf8));
        assert_eq!(
            check(b"<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>"),
            Err(Refusal::NotUtf8)
        );
        assert_eq!(check(b"<a>\xff</a>"), Err(Refusal::NotUtf8));
        assert_eq!(check(b"<a b='>"), Err(Refusal::Unterminated));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cells_core::fuzz_cases()))]

        /// Arbitrary bytes never panic the scanner.
        #[test]
        fn any_bytes(body in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = check(&body);
        }

        /// Arbitrary markup-shaped input: whatever passes the check is shallow enough for
        /// xmltree to parse without exhausting the stack (the thread's stack here is small).
        #[test]
        fn whatever_passes_parses_safely(
            pieces in proptest::collection::vec(
                proptest::sample::select(&[
                    "<a>", "</a>", "<b/>", "<c x='>'>", "</c>", "<!--", "-->", "<?p", "?>",
                    "<![CDATA[", "]]>", "text", "\"", "'",
                ][..]),
                0..400,
            )
        ) {
            let body = pieces.concat();
            if check(body.as_bytes()).is_ok() {
                let _ = std::thread::Builder::new()
                    .stack_size(256 << 10)
                    .spawn(move || xmltree::Element::parse(body.as_bytes()).is_ok())
                    .unwrap()
                    .join()
                    .expect("xmltree parsed a body that passed the check without overflowing");
            }
        }

        /// The depth found is the depth written: n nested elements pass exactly up to the limit.
        #[test]
        fn depth_is_counted_exactly(depth in 0usize..200) {
            let body = format!("{}{}", "<e a=\"/\">".repeat(depth), "</e>".repeat(depth));
            prop_assert_eq!(check(body.as_bytes()).is_ok(), depth <= MAX_DEPTH);
        }
    }
}
