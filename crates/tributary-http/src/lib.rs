//! HTTP rules that the node (`tributary serve`, axum) and the edge worker (workers-rs) must apply
//! identically, kept free of either framework: a tab fetching weights by ranges and revalidating
//! them by hash cannot care which of the two answered.

use serde_json::{Value, json};

/// What a GET for a file of `size` bytes with a strong validator should be answered with, after
/// `If-None-Match`, `If-Range` and `Range`, in the order RFC 9110 §13.2.2 evaluates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 304: the client's copy is current; no body.
    NotModified,
    /// 200 with the whole file.
    Whole,
    /// 206 with bytes first..=last (`Content-Range: bytes first-last/size`).
    Part(u64, u64),
    /// 416 (`Content-Range: bytes */size`).
    Unsatisfiable,
}

/// The request headers that decide an [`Answer`], as the client sent them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    pub if_none_match: Option<&'a str>,
    pub if_range: Option<&'a str>,
    pub range: Option<&'a str>,
}

/// A strong entity tag for a content hash in hex, quoted as it goes in `ETag`.
pub fn etag(hex: &str) -> String {
    format!("\"{hex}\"")
}

impl Conditions<'_> {
    /// `hex` is the file's content hash (its ETag unquoted). We send no `Last-Modified`, so an
    /// `If-Range` date never matches and the whole file goes out, as the RFC requires.
    pub fn answer(&self, hex: &str, size: u64) -> Answer {
        if self.if_none_match.is_some_and(|v| etag_matches(v, hex)) {
            return Answer::NotModified;
        }
        let range_applies = self.if_range.is_none_or(|v| v.trim() == etag(hex));
        match self.range.filter(|_| range_applies) {
            Some(range) => match parse_range(range, size) {
                Ranged::Whole => Answer::Whole,
                Ranged::Part(first, last) => Answer::Part(first, last),
                Ranged::Unsatisfiable => Answer::Unsatisfiable,
            },
            None => Answer::Whole,
        }
    }
}

/// Whether an `If-None-Match` list names our tag (weakly, as the RFC compares for it), or is `*`.
pub fn etag_matches(value: &str, hex: &str) -> bool {
    value.split(',').map(str::trim).any(|tag| {
        tag == "*"
            || tag
                .strip_prefix("W/")
                .unwrap_or(tag)
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                == Some(hex)
    })
}

/// What a `Range` header asks of a file of some size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranged {
    /// No range, or one we may ignore (another unit, several ranges, bad syntax): RFC 9110 lets
    /// a server answer those with the whole file.
    Whole,
    /// Bytes first..=last.
    Part(u64, u64),
    /// Only bytes past the end: 416.
    Unsatisfiable,
}

pub fn parse_range(value: &str, size: u64) -> Ranged {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ranged::Whole;
    };
    let Some((first, last)) = spec.split_once('-').filter(|_| !spec.contains(',')) else {
        return Ranged::Whole;
    };
    // Ok(None) for an empty bound, Err for one that is not a number.
    let bound = |s: &str| -> Result<Option<u64>, ()> {
        let s = s.trim();
        if s.is_empty() {
            Ok(None)
        } else if s.bytes().all(|b| b.is_ascii_digit()) {
            // Too many digits to be a position in any file: past the end.
            Ok(Some(s.parse().unwrap_or(u64::MAX)))
        } else {
            Err(())
        }
    };
    match (bound(first), bound(last)) {
        (Ok(Some(first)), Ok(last)) if last.is_none_or(|l| l >= first) => {
            if first < size {
                Ranged::Part(first, last.map_or(size - 1, |l| l.min(size - 1)))
            } else {
                Ranged::Unsatisfiable
            }
        }
        // The last `suffix` bytes.
        (Ok(None), Ok(Some(suffix))) => {
            if suffix > 0 && size > 0 {
                Ranged::Part(size - suffix.min(size), size - 1)
            } else {
                Ranged::Unsatisfiable
            }
        }
        _ => Ranged::Whole,
    }
}

/// The OpenAI error body every Tributary endpoint answers with, so clients parse one shape
/// whether a node or an edge worker refused them. `kind` is OpenAI's `type`
/// (`invalid_request_error`, `authentication_error`, `not_found_error`, `server_error`, …).
pub fn error_body(kind: &str, message: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges_parse_as_rfc_9110_reads_them() {
        for (header, want) in [
            ("bytes=0-9", Ranged::Part(0, 9)),
            ("bytes=90-", Ranged::Part(90, 99)),
            ("bytes=90-500", Ranged::Part(90, 99)),
            ("bytes=-10", Ranged::Part(90, 99)),
            ("bytes=-500", Ranged::Part(0, 99)),
            ("bytes=100-", Ranged::Unsatisfiable),
            ("bytes=99999999999999999999999-", Ranged::Unsatisfiable),
            ("bytes=-0", Ranged::Unsatisfiable),
            ("bytes=5-4", Ranged::Whole),
            ("bytes=0-1,5-6", Ranged::Whole),
            ("bytes=a-b", Ranged::Whole),
            ("bytes=-", Ranged::Whole),
            ("items=0-9", Ranged::Whole),
        ] {
            assert_eq!(parse_range(header, 100), want, "{header}");
        }
        assert_eq!(parse_range("bytes=0-", 0), Ranged::Unsatisfiable);
    }

    #[test]
    fn validators_come_before_ranges() {
        let hex = "ab12";
        let tag = etag(hex);
        let ask = |inm, ifr, range| {
            Conditions {
                if_none_match: inm,
                if_range: ifr,
                range,
            }
            .answer(hex, 100)
        };
        assert_eq!(
            ask(Some(&*tag), None, Some("bytes=0-9")),
            Answer::NotModified
        );
        assert_eq!(ask(Some("W/\"ab12\""), None, None), Answer::NotModified);
        assert_eq!(ask(Some("\"other\", *"), None, None), Answer::NotModified);
        assert_eq!(ask(Some("\"other\""), None, None), Answer::Whole);
        assert_eq!(
            ask(None, Some(&*tag), Some("bytes=0-9")),
            Answer::Part(0, 9)
        );
        assert_eq!(ask(None, Some("\"old\""), Some("bytes=0-9")), Answer::Whole);
        assert_eq!(
            ask(
                None,
                Some("Wed, 21 Oct 2015 07:28:00 GMT"),
                Some("bytes=0-9")
            ),
            Answer::Whole
        );
        assert_eq!(ask(None, None, Some("bytes=100-")), Answer::Unsatisfiable);
    }

    proptest! {
        /// Whatever the header, a part lies inside the file and is never empty.
        #[test]
        fn parts_stay_inside_the_file(header in "bytes=[0-9]{0,4}-[0-9]{0,4}", size in 0u64..2000) {
            if let Ranged::Part(first, last) = parse_range(&header, size) {
                prop_assert!(first <= last && last < size);
            }
        }
    }
}
