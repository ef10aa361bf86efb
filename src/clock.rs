//! Calendar arithmetic on Unix time, without floating point or a time-zone database: UTC
//! civil dates, and the two timestamp formats providers send back (HTTP-date in `retry-after`,
//! RFC 3339 in Anthropic's rate-limit headers).

pub const MS_PER_DAY: u64 = 86_400_000;

/// Days since 1970-01-01 → (year, month, day), after Howard Hinnant's `civil_from_days`
/// (http://howardhinnant.github.io/date_algorithms.html), for dates after 1970.
pub fn civil_from_days(days: u64) -> (u64, u32, u32) {
    let z = days + 719_468;
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
pub fn days_from_civil(y: u64, m: u32, d: u32) -> Option<u64> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
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

fn number(s: &str) -> Option<u64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

fn clock_ms(hms: &str) -> Option<u64> {
    let mut parts = hms.split(':');
    let (h, m, s) = (number(parts.next()?)?, number(parts.next()?)?, parts.next()?);
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let millis = frac.get(..frac.len().min(3)).map_or(0, |f| number(&format!("{f:0<3}")).unwrap_or(0));
    let secs = number(secs)?;
    (h < 24 && m < 60 && secs < 61 && parts.next().is_none()).then_some(((h * 60 + m) * 60 + secs) * 1000 + millis)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 IMF-fixdate).
pub fn parse_http_date(s: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let mut words = s.split_whitespace().skip(1);
    let day = number(words.next()?)?;
    let month_name = words.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)?;
    let year = number(words.next()?)?;
    let time = clock_ms(words.next()?)?;
    (words.next()? == "GMT").then_some(())?;
    let days = days_from_civil(year, u32::try_from(month + 1).ok()?, u32::try_from(day).ok()?)?;
    Some(days * MS_PER_DAY + time)
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
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off.get(1..)?.split_once(':')?;
        (t, sign * i64::try_from((number(oh)? * 60 + number(om)?) * 60_000).ok()?)
    };
    let days = days_from_civil(y, u32::try_from(m).ok()?, u32::try_from(d).ok()?)?;
    let local = i64::try_from(days * MS_PER_DAY + clock_ms(time)?).ok()?;
    u64::try_from(local - offset_ms).ok()
}

/// Go-style durations OpenAI sends in `x-ratelimit-reset-*`: `1s`, `6m0s`, `20ms`, `1h2m3.5s`.
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
        let whole = number(whole)?;
        let frac_ms = if frac.is_empty() { 0 } else { number(frac)? * scale / 10u64.checked_pow(u32::try_from(frac.len()).ok()?)? };
        total += whole * scale + frac_ms;
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
    }
}
