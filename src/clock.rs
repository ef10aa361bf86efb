//! Calendar arithmetic on Unix time, without floating point or a time-zone database: UTC
//! civil dates, and the two timestamp formats providers send back (HTTP-date in `retry-after`,
//! RFC 3339 in Anthropic's rate-limit headers).

// Numbers here come from provider headers: every operation that could overflow is checked or
// saturating, or runs on a range established first (and says so).
#![deny(clippy::arithmetic_side_effects)]

pub const MS_PER_DAY: u64 = 86_400_000;

/// The last day a millisecond timestamp in a `u64` reaches.
const MAX_DAYS: u64 = u64::MAX / MS_PER_DAY;

/// HTTP-dates and RFC 3339 timestamps have four-digit years.
const MAX_YEAR: u64 = 9999;

/// Days since 1970-01-01 → (year, month, day), after Howard Hinnant's `civil_from_days`
/// (http://howardhinnant.github.io/date_algorithms.html), for dates after 1970.
#[allow(clippy::arithmetic_side_effects, reason = "days ≤ MAX_DAYS (2.1e11): every intermediate stays below 2^48")]
pub fn civil_from_days(days: u64) -> (u64, u32, u32) {
    let z = days.min(MAX_DAYS) + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

/// (year, month, day) → days since 1970-01-01 (the inverse of [`civil_from_days`]).
#[allow(clippy::arithmetic_side_effects, reason = "1970 ≤ y ≤ MAX_YEAR, m ≤ 12, d ≤ 31: every intermediate stays below 2^32")]
pub fn days_from_civil(y: u64, m: u32, d: u32) -> Option<u64> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=MAX_YEAR).contains(&y) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y % 400;
    let mp = u64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + u64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

/// Plain digits: no sign, point or exponent.
fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn number(s: &str) -> Option<u64> {
    digits(s).then(|| s.parse().ok()).flatten()
}

/// Plain digits as a `u64`; more than a `u64` holds saturates.
pub fn saturating_number(s: &str) -> Option<u64> {
    digits(s).then(|| s.parse().unwrap_or(u64::MAX))
}

fn clock_ms(hms: &str) -> Option<u64> {
    let mut parts = hms.split(':');
    let (h, m, s) = (number(parts.next()?)?, number(parts.next()?)?, parts.next()?);
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let millis = frac.get(..frac.len().min(3)).map_or(0, |f| number(&format!("{f:0<3}")).unwrap_or(0));
    let secs = number(secs)?;
    if h >= 24 || m >= 60 || secs >= 61 || parts.next().is_some() {
        return None;
    }
    #[allow(clippy::arithmetic_side_effects, reason = "h < 24, m < 60, secs < 61, millis < 1000")]
    Some(((h * 60 + m) * 60 + secs) * 1000 + millis)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 IMF-fixdate).
pub fn parse_http_date(s: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let mut words = s.split_whitespace().skip(1);
    let day = number(words.next()?)?;
    let month_name = words.next()?;
    let month = (1..).zip(MONTHS).find(|(_, name)| *name == month_name).map(|(number, _)| number)?;
    let year = number(words.next()?)?;
    let time = clock_ms(words.next()?)?;
    (words.next()? == "GMT").then_some(())?;
    let days = days_from_civil(year, month, u32::try_from(day).ok()?)?;
    days.checked_mul(MS_PER_DAY)?.checked_add(time)
}

/// `2026-11-24T14:06:29Z`, `2026-11-24T14:06:29.5+01:00` (RFC 3339).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let (date, rest) = s.split_once(['T', 't', ' '])?;
    let mut ymd = date.split('-');
    let (y, m, d) = (number(ymd.next()?)?, number(ymd.next()?)?, number(ymd.next()?)?);
    let (time, offset_ms): (&str, i64) = if let Some(t) = rest.strip_suffix(['Z', 'z']) {
        (t, 0)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (t, off) = rest.split_at(at);
        let (oh, om) = off.get(1..)?.split_once(':')?;
        let (oh, om) = (number(oh)?, number(om)?);
        if oh >= 24 || om >= 60 {
            return None;
        }
        #[allow(clippy::arithmetic_side_effects, reason = "oh < 24 and om < 60")]
        let magnitude = i64::try_from((oh * 60 + om) * 60_000).ok()?;
        (t, if off.starts_with('-') { magnitude.checked_neg()? } else { magnitude })
    };
    let days = days_from_civil(y, u32::try_from(m).ok()?, u32::try_from(d).ok()?)?;
    let local = i64::try_from(days.checked_mul(MS_PER_DAY)?.checked_add(clock_ms(time)?)?).ok()?;
    u64::try_from(local.checked_sub(offset_ms)?).ok()
}

/// Go-style durations OpenAI sends in `x-ratelimit-reset-*`: `1s`, `6m0s`, `20ms`, `1h2m3.5s`.
/// One too long for a `u64` saturates: it means "a very long time", which callers cap.
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let (value, tail) = rest.split_at(digits);
        let unit_len = tail.find(|c: char| c.is_ascii_digit()).unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return None,
        };
        let (whole, frac) = value.split_once('.').unwrap_or((value, ""));
        let whole = saturating_number(whole)?;
        let frac_ms = if frac.is_empty() {
            0
        } else {
            number(frac)?.saturating_mul(scale).checked_div(10u64.checked_pow(u32::try_from(frac.len()).ok()?)?)?
        };
        total = total.saturating_add(whole.saturating_mul(scale)).saturating_add(frac_ms);
        rest = next;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips() {
        for days in [0, 59, 365, 10_957, 19_782, 20_416, 36_524, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), Some(days), "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(2024, 2, 29), Some(19_782));
        assert_eq!(days_from_civil(1969, 1, 1), None);
    }

    #[test]
    fn http_dates() {
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777_000));
        assert_eq!(parse_http_date("Tue, 24 Nov 2026 12:00:00 GMT"), Some(1_795_521_600_000));
        assert_eq!(parse_http_date("Tue, 24 Nov 2026 12:00:00 CET"), None);
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn rfc3339_timestamps() {
        assert_eq!(parse_rfc3339("2026-11-24T12:00:00Z"), Some(1_795_521_600_000));
        assert_eq!(parse_rfc3339("2026-11-24T13:00:00.250+01:00"), Some(1_795_521_600_250));
        assert_eq!(parse_rfc3339("2026-11-24T11:30:00-00:30"), Some(1_795_521_600_000));
        assert_eq!(parse_rfc3339("2026-13-24T12:00:00Z"), None);
        assert_eq!(parse_rfc3339("not a date"), None);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration_ms("1s"), Some(1000));
        assert_eq!(parse_duration_ms("6m0s"), Some(360_000));
        assert_eq!(parse_duration_ms("20ms"), Some(20));
        assert_eq!(parse_duration_ms("1h2m3.5s"), Some(3_723_500));
        assert_eq!(parse_duration_ms("0.5s"), Some(500));
        assert_eq!(parse_duration_ms("5x"), None);
        assert_eq!(parse_duration_ms(""), None);
        assert_eq!(parse_duration_ms("18446744073709551615h1s"), Some(u64::MAX), "saturates");
        assert_eq!(parse_duration_ms("1.99999999999999999999s"), None, "a fraction beyond u64 is unreadable");
    }

    #[test]
    fn huge_fields_are_rejected_not_wrapped() {
        assert_eq!(days_from_civil(u64::MAX, 1, 1), None);
        assert_eq!(parse_http_date("Tue, 24 Nov 99999 12:00:00 GMT"), None);
        assert_eq!(parse_http_date("Tue, 18446744073709551615 Nov 2026 12:00:00 GMT"), None);
        assert_eq!(parse_http_date("Tue, 24 Nov 2026 18446744073709551615:00:00 GMT"), None);
        assert_eq!(parse_rfc3339("2026-11-24T12:00:00+18446744073709551615:00"), None);
        assert_eq!(parse_rfc3339("2026-11-24T12:00:00+24:00"), None);
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00+01:00"), None, "before the epoch");
        assert_eq!(civil_from_days(u64::MAX), civil_from_days(u64::MAX / MS_PER_DAY));
    }
}
