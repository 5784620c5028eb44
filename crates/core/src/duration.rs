//! Go-style durations with days, as Cells' CLI takes them: `30s`, `10m`, `24h`, `28d`,
//! `1h30m`. A bare number of seconds is accepted only where seed 002 shows it (`-a 600`).

use anyhow::{Context, bail};

use crate::auth::MAX_TOKEN_SECONDS;

/// Seconds in `text`. Refuses empty, negative, zero, fractional, unknown-unit and absurd values.
pub fn parse(text: &str, bare_seconds: bool) -> anyhow::Result<i64> {
    let text = text.trim();
    if text.is_empty() {
        bail!("empty duration; use e.g. 30s, 10m, 24h or 28d");
    }
    if text.starts_with('-') {
        bail!("{text:?}: negative durations are not allowed");
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        if !bare_seconds {
            bail!("{text:?} has no unit; use e.g. 30s, 10m, 24h or 28d");
        }
        return check(text, text.parse::<i64>().context("number too large")?);
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => bail!("{text:?}: unknown unit {c:?}; units are s, m, h and d"),
        };
        if digits.is_empty() {
            bail!("{text:?}: a unit must follow a number");
        }
        let value: i64 = digits
            .parse()
            .with_context(|| format!("{text:?}: number too large"))?;
        total = value
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .with_context(|| format!("{text:?} is too long"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        bail!("{text:?}: the last number has no unit");
    }
    check(text, total)
}

fn check(text: &str, seconds: i64) -> anyhow::Result<i64> {
    if seconds <= 0 {
        bail!("{text:?}: the duration must be positive");
    }
    if seconds > MAX_TOKEN_SECONDS {
        bail!("{text:?}: longer than 10 years");
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn accepts_go_durations_with_days() {
        assert_eq!(parse("30s", false).unwrap(), 30);
        assert_eq!(parse("10m", false).unwrap(), 600);
        assert_eq!(parse("24h", false).unwrap(), 86_400);
        assert_eq!(parse("28d", false).unwrap(), 28 * 86_400);
        assert_eq!(parse("1h30m", false).unwrap(), 5400);
        assert_eq!(parse("600", true).unwrap(), 600);
    }

    #[test]
    fn refuses_bad_durations() {
        for text in [
            "",
            "-5m",
            "0s",
            "0",
            "5",
            "5x",
            "h",
            "1.5h",
            "10m5",
            "99999999999999999999s",
            "4000d",
            "1 h",
        ] {
            assert!(parse(text, text == "0").is_err(), "{text:?} should be refused");
        }
        assert!(parse("5", false).is_err());
        assert!(parse("0", true).is_err());
    }
}
