//! The value syntaxes of query parameters: Go durations, Jaeger UI lookbacks, RFC 3339 times.
//!
//! Each parser returns a message that quotes the input and says what is expected; the caller
//! names the parameter.

use faultline_model::UnixNanos;

pub(crate) const NANOS_PER_MILLI: u64 = 1_000_000;
pub(crate) const NANOS_PER_SEC: u64 = 1_000_000_000;
pub(crate) const NANOS_PER_HOUR: u64 = 3_600 * NANOS_PER_SEC;
pub(crate) const NANOS_PER_DAY: u64 = 24 * NANOS_PER_HOUR;

const DURATION_HINT: &str =
    "expected a Go duration such as 250ms, 1.5s or 1h30m (units ns, us, µs, ms, s, m, h)";

/// Parses a duration in Go's `time.ParseDuration` syntax (`300ms`, `1.5h`, `2h45m`, `0`) into
/// nanoseconds. Negative durations are refused: no query here has a use for them.
///
/// ```
/// use faultline_query::params::parse_go_duration;
/// assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
/// assert_eq!(parse_go_duration("1.5ms"), Ok(1_500_000));
/// assert!(parse_go_duration("10").is_err());
/// ```
pub fn parse_go_duration(input: &str) -> Result<u64, String> {
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(format!("{input:?} is not a duration; {DURATION_HINT}"));
    }
    let invalid = || format!("{input:?} is not a duration; {DURATION_HINT}");
    let overflow = || format!("{input:?} is too long a duration");
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after_int) = rest.split_at(int_len);
        let (frac_digits, after_number) = match after_int.strip_prefix('.') {
            Some(r) => r.split_at(r.bytes().take_while(u8::is_ascii_digit).count()),
            None => ("", after_int),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid());
        }
        let unit_len = after_number
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after_number.len());
        let (unit, next) = after_number.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => u128::from(NANOS_PER_MILLI),
            "s" => u128::from(NANOS_PER_SEC),
            "m" => 60 * u128::from(NANOS_PER_SEC),
            "h" => u128::from(NANOS_PER_HOUR),
            "" => {
                return Err(format!(
                    "{input:?} has a number without a unit; {DURATION_HINT}"
                ))
            }
            other => {
                return Err(format!(
                    "{input:?} has unknown unit {other:?}; {DURATION_HINT}"
                ))
            }
        };
        let int: u128 = if int_digits.is_empty() {
            0
        } else {
            int_digits.parse().map_err(|_| overflow())?
        };
        total = int
            .checked_mul(unit_nanos)
            .and_then(|n| total.checked_add(n))
            .ok_or_else(overflow)?;
        // Digits past the 18th are below a nanosecond for every unit; ignoring them keeps the
        // arithmetic in range.
        let frac = &frac_digits[..frac_digits.len().min(18)];
        if !frac.is_empty() {
            let numerator: u128 = frac.parse().map_err(|_| invalid())?;
            let scale = 10u128.pow(frac.len() as u32);
            total = total
                .checked_add(numerator * unit_nanos / scale)
                .ok_or_else(overflow)?;
        }
        if total > i64::MAX as u128 {
            return Err(overflow());
        }
        rest = next;
    }
    if negative && total != 0 {
        return Err(format!("{input:?} is negative; durations must be positive"));
    }
    Ok(total as u64)
}

/// Parses Jaeger UI's `lookback`: a Go duration, whole days or weeks (`2d`, `1w`), or `custom`
/// (meaning `start`/`end` decide), which returns `None`.
pub fn parse_lookback(input: &str) -> Result<Option<u64>, String> {
    if input == "custom" {
        return Ok(None);
    }
    for (suffix, unit) in [("d", NANOS_PER_DAY), ("w", 7 * NANOS_PER_DAY)] {
        if let Some(n) = input.strip_suffix(suffix) {
            if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                return n
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| n.checked_mul(unit))
                    .map(Some)
                    .ok_or_else(|| format!("{input:?} is too long a lookback"));
            }
        }
    }
    parse_go_duration(input).map(Some).map_err(|_| {
        format!(
            "{input:?} is not a lookback; expected a duration such as 1h, 2d or 1w, or \"custom\""
        )
    })
}

/// Parses an RFC 3339 timestamp (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00.5+02:00`).
pub fn parse_rfc3339(input: &str) -> Result<UnixNanos, String> {
    let bad = || format!("{input:?} is not an RFC 3339 time such as 2024-05-01T12:00:00Z");
    let b = input.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        part.iter()
            .try_fold(0i64, |acc, d| Some(acc * 10 + i64::from(d - b'0')))
    };
    let separators_ok = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't')
        && b[13] == b':'
        && b[16] == b':';
    if !separators_ok {
        return Err(bad());
    }
    let (year, month, day, hour, minute, second) = match (
        digits(0..4),
        digits(5..7),
        digits(8..10),
        digits(11..13),
        digits(14..16),
        digits(17..19),
    ) {
        (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) => (y, mo, d, h, mi, s),
        _ => return Err(bad()),
    };
    let mut i = 19;
    let mut frac_nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err(bad());
        }
        for (pos, d) in b[i + 1..i + 1 + n.min(9)].iter().enumerate() {
            frac_nanos += i64::from(d - b'0') * 10i64.pow(8 - pos as u32);
        }
        i += 1 + n;
    }
    let offset_secs = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (Some(h), Some(m)) = (digits(i + 1..i + 3), digits(i + 4..i + 6)) else {
                return Err(bad());
            };
            if h > 23 || m > 59 {
                return Err(bad());
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(format!("{input:?} is not a valid date and time"));
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_secs;
    if secs < 0 {
        return Err(format!("{input:?} is before 1970-01-01T00:00:00Z"));
    }
    (secs as u64)
        .checked_mul(NANOS_PER_SEC)
        .and_then(|n| n.checked_add(frac_nanos as u64))
        .map(UnixNanos)
        .ok_or_else(|| format!("{input:?} is too far in the future"))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("+0", 0),
            ("-0", 0),
            ("0s", 0),
            ("5ns", 5),
            ("7us", 7_000),
            ("7µs", 7_000),
            ("7μs", 7_000),
            ("250ms", 250_000_000),
            ("1.2s", 1_200_000_000),
            ("1.5s", 1_500_000_000),
            (".5s", 500_000_000),
            ("5.s", 5_000_000_000),
            ("2m", 120_000_000_000),
            ("1h30m", 5_400_000_000_000),
            ("1h30m15.25s", 5_415_250_000_000),
            ("2h45m3s7ms", 9_903_007_000_000),
            ("0.000000001s", 1),
            ("1.0000000000000000000001h", 3_600_000_000_000),
        ];
        for (s, want) in cases {
            assert_eq!(parse_go_duration(s), Ok(*want), "{s}");
        }
        for bad in [
            "",
            "1",
            "1.2",
            "s",
            ".s",
            ".",
            "-5s",
            "1d",
            "5 s",
            "1hh",
            "ms5",
            "1e3s",
            "99999999999999999999999999999999999999999999h",
            "3000000h",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn lookbacks() {
        assert_eq!(parse_lookback("custom"), Ok(None));
        assert_eq!(parse_lookback("1h"), Ok(Some(NANOS_PER_HOUR)));
        assert_eq!(parse_lookback("2d"), Ok(Some(2 * NANOS_PER_DAY)));
        assert_eq!(parse_lookback("1w"), Ok(Some(7 * NANOS_PER_DAY)));
        assert_eq!(parse_lookback("90m"), Ok(Some(90 * 60 * NANOS_PER_SEC)));
        for bad in ["d", "1.5d", "yesterday", "-1h", "99999999999999999999d"] {
            assert!(parse_lookback(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(UnixNanos(0)));
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20Z"),
            Ok(UnixNanos(1_700_000_000 * NANOS_PER_SEC))
        );
        assert_eq!(
            parse_rfc3339("2023-11-15T00:13:20.5+02:00"),
            Ok(UnixNanos(1_700_000_000 * NANOS_PER_SEC + 500_000_000))
        );
        assert_eq!(
            parse_rfc3339("2023-11-14t20:13:20.123456789123-02:00"),
            Ok(UnixNanos(1_700_000_000 * NANOS_PER_SEC + 123_456_789))
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20-04:30"),
            Ok(UnixNanos((1_700_000_000 + 4 * 3600 + 1800) * NANOS_PER_SEC))
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z"),
            Ok(UnixNanos(1_709_164_800 * NANOS_PER_SEC))
        );
        for bad in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-11-14 22:13:20Z",
            "2023-13-14T22:13:20Z",
            "2023-02-29T22:13:20Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+2:00",
            "2023-11-14T22:13:20+02:60",
            "1969-12-31T23:59:59Z",
            "2023-11-14T22:13:20Zjunk",
            "２０２３-11-14T22:13:20Z",
            "1700000000",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?} should fail");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(input in "\\PC{0,40}") {
            let _ = parse_go_duration(&input);
            let _ = parse_lookback(&input);
            let _ = parse_rfc3339(&input);
        }

        #[test]
        fn near_valid_inputs_never_panic(
            input in "[-+]?[0-9.]{0,25}(ns|us|µs|ms|s|m|h|d|w|x)?([0-9.]{0,5}[a-z]{0,2}){0,3}",
            time in "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,20})?(Z|[+-][0-9]{2}:[0-9]{2}|.{0,3})",
        ) {
            let _ = parse_go_duration(&input);
            let _ = parse_lookback(&input);
            let _ = parse_rfc3339(&time);
        }

        #[test]
        fn durations_round_trip_through_nanoseconds(n in 0u64..i64::MAX as u64) {
            proptest::prop_assert_eq!(parse_go_duration(&format!("{n}ns")), Ok(n));
        }
    }
}
