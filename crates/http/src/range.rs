//! Multi-range requests made safe before they reach a server that honours them (RFC 9110
//! §14.2): overlapping or adjacent ranges are merged and at most `MAX_RANGES` are served, so a
//! response never carries more than the file plus part headers.
//!
//! Without the file size, only `first-last` and `first-` ranges can be compared; a list that
//! mixes a suffix range (`-n`) with others, names more than `MAX_RANGES` ranges after merging,
//! or does not parse is ignored, and the whole file is sent with 200, as §14.2 allows.

/// Most ranges one response carries.
pub const MAX_RANGES: usize = 16;

/// What to do with a `Range` header value.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranges {
    /// Pass it on unchanged (one range, or several that neither overlap nor touch).
    Keep,
    /// Pass on this value instead (merged ranges).
    Replace(String),
    /// Drop the header: the whole file is sent.
    Ignore,
}

/// Decide about a `Range` header value (see the module comment).
pub fn coalesce(value: &str) -> Ranges {
    let Some(list) = value.trim().strip_prefix("bytes=") else {
        return Ranges::Keep;
    };
    let specs: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if specs.len() <= 1 {
        return Ranges::Keep;
    }
    if specs.len() > 4 * MAX_RANGES {
        return Ranges::Ignore;
    }
    let mut spans: Vec<(u64, Option<u64>)> = Vec::with_capacity(specs.len());
    for spec in &specs {
        let Some((first, last)) = spec.split_once('-') else {
            return Ranges::Ignore;
        };
        let Ok(first) = first.trim().parse::<u64>() else {
            // A suffix range, or garbage.
            return Ranges::Ignore;
        };
        let last = match last.trim() {
            "" => None,
            text => match text.parse::<u64>() {
                Ok(last) if last >= first => Some(last),
                _ => return Ranges::Ignore,
            },
        };
        spans.push((first, last));
    }
    spans.sort();
    let mut merged: Vec<(u64, Option<u64>)> = Vec::with_capacity(spans.len());
    for (first, last) in spans {
        match merged.last_mut() {
            // Overlapping or adjacent: `first` is at most one past the previous end.
            Some((_, previous)) if previous.is_none_or(|end| first <= end.saturating_add(1)) => {
                *previous = match (*previous, last) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            _ => merged.push((first, last)),
        }
    }
    if merged.len() > MAX_RANGES {
        return Ranges::Ignore;
    }
    if merged.len() == specs.len() {
        return Ranges::Keep;
    }
    let text: Vec<String> = merged
        .iter()
        .map(|(first, last)| match last {
            Some(last) => format!("{first}-{last}"),
            None => format!("{first}-"),
        })
        .collect();
    Ranges::Replace(format!("bytes={}", text.join(",")))
}

#[cfg(test)]
mod tests {
    use super::{MAX_RANGES, Ranges, coalesce};
    use proptest::prelude::*;

    #[test]
    fn overlapping_ranges_are_merged_and_floods_ignored() {
        assert_eq!(coalesce("bytes=0-99"), Ranges::Keep);
        assert_eq!(coalesce("bytes=0-9,20-29"), Ranges::Keep);
        assert_eq!(coalesce("bytes=0-9,10-19"), Ranges::Replace("bytes=0-19".into()));
        assert_eq!(
            coalesce("bytes=5-9, 0-6, 50-"),
            Ranges::Replace("bytes=0-9,50-".into())
        );
        assert_eq!(coalesce("bytes=0-,100-200"), Ranges::Replace("bytes=0-".into()));
        let flood = format!("bytes={}", vec!["0-999999"; 1000].join(","));
        assert_eq!(coalesce(&flood), Ranges::Ignore);
        let same = format!("bytes={}", vec!["0-999999"; 40].join(","));
        assert_eq!(coalesce(&same), Ranges::Replace("bytes=0-999999".into()));
        let many: Vec<String> = (0..=MAX_RANGES)
            .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
            .collect();
        assert_eq!(coalesce(&format!("bytes={}", many.join(","))), Ranges::Ignore);
        assert_eq!(coalesce("bytes=-5,0-1"), Ranges::Ignore);
        assert_eq!(coalesce("bytes=9-1,0-1"), Ranges::Ignore);
        assert_eq!(coalesce("items=0-1,0-1"), Ranges::Keep);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cells_core::fuzz_cases()))]

        /// Whatever a client sends, what is passed on names at most `MAX_RANGES` disjoint,
        /// non-adjacent ranges, so no byte is sent twice.
        #[test]
        fn passed_on_ranges_never_overlap(value in "bytes=[0-9, -]{0,80}") {
            let passed = match coalesce(&value) {
                Ranges::Keep => value.clone(),
                Ranges::Replace(new) => new,
                Ranges::Ignore => return Ok(()),
            };
            let list = passed.trim().strip_prefix("bytes=").unwrap_or_default();
            let specs: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            if specs.len() <= 1 {
                return Ok(());
            }
            prop_assert!(specs.len() <= MAX_RANGES);
            let mut spans: Vec<(u64, u64)> = specs
                .iter()
                .map(|spec| {
                    let (first, last) = spec.split_once('-').unwrap();
                    let first: u64 = first.trim().parse().unwrap();
                    let last = if last.trim().is_empty() { u64::MAX } else { last.trim().parse().unwrap() };
                    (first, last)
                })
                .collect();
            spans.sort();
            for pair in spans.windows(2) {
                prop_assert!(pair[1].0 > pair[0].1.saturating_add(1), "{passed}");
            }
        }
    }
}
