//! Go's `time.ParseDuration`, since go-micro's duration flags (`--client_request_timeout=500ms`)
//! take Go's spelling: a sequence of decimal numbers, each with an optional fraction and a unit
//! (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), e.g. `1m30s`, `1.5h`; `0` alone needs no unit.
//! Negative durations are refused, as no flag here means anything by them.

use std::time::Duration;

/// Nanoseconds per unit, longest spellings first so `ms` is not read as `m`.
const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// `text` as a duration, or why it is not one (the message names the input).
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("invalid duration {text:?}: {why} (e.g. 500ms, 5s, 1m30s)");
    let mut rest = text.trim();
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest.starts_with('-') {
        return Err(bad("negative"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad("empty"));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..digits];
        rest = &rest[digits..];
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return Err(bad("expected a number"));
        }
        if fraction.contains('.') {
            return Err(bad("two decimal points"));
        }
        let Some(&(unit, scale)) = UNITS.iter().find(|(u, _)| rest.starts_with(u)) else {
            return Err(bad("missing or unknown unit"));
        };
        rest = &rest[unit.len()..];
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad("number too large"))?
        };
        // The fraction scaled to this unit's nanoseconds, digit by digit (Go drops the
        // precision beyond a nanosecond the same way).
        let mut part: u128 = 0;
        let mut divisor: u128 = 1;
        for d in fraction.bytes().take(30) {
            part = part * 10 + u128::from(d - b'0');
            divisor *= 10;
        }
        total = whole
            .checked_mul(scale)
            .and_then(|n| n.checked_add(part * scale / divisor))
            .and_then(|n| total.checked_add(n))
            .ok_or_else(|| bad("too large"))?;
    }
    let nanos = u64::try_from(total).map_err(|_| bad("too large"))?;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gos_spellings() {
        let ok = |s: &str| parse_go_duration(s).expect(s);
        assert_eq!(ok("5s"), Duration::from_secs(5));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("1m"), Duration::from_secs(60));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("250us"), Duration::from_micros(250));
        assert_eq!(ok("250µs"), Duration::from_micros(250));
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("+2s"), Duration::from_secs(2));
    }

    #[test]
    fn refusals_name_the_input() {
        for bad in [
            "",
            "5",
            "s",
            "5x",
            "-1s",
            "1..5s",
            "1.2.3s",
            "5s5",
            "ms",
            "99999999999999h",
        ] {
            let err = parse_go_duration(bad).expect_err(bad);
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
