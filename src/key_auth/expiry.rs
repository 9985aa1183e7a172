//! `expires=` of a key: an RFC 3339 time or a Unix time, kept as Unix
//! seconds. Pure logic (parsing, comparing, formatting for log lines).

/// 9999-12-31T23:59:59Z: the last time RFC 3339 can write.
const LAST: i64 = 253_402_300_799;

/// 0000-01-01T00:00:00Z.
const FIRST: i64 = -62_167_219_200;

/// Parses `expires=`: a Unix time (decimal seconds since 1970-01-01 UTC),
/// or an RFC 3339 date-time with an explicit offset
/// (`2026-06-30T23:59:59Z`, `2026-07-01T01:59:59+02:00`, fractions of a
/// second allowed and dropped).
pub fn parse_expires(value: &[u8]) -> Result<i64, &'static str> {
    const EXPECTED: &str =
        "expected an RFC 3339 time such as 2026-06-30T23:59:59Z, or a Unix time in seconds";
    if value.is_empty() {
        return Err("empty");
    }
    if value.iter().all(u8::is_ascii_digit) {
        return digits(value)
            .filter(|&unix| unix <= LAST)
            .ok_or("a Unix time after 9999-12-31T23:59:59Z");
    }
    rfc3339(value).ok_or(EXPECTED)
}

fn digits(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    bytes.iter().try_fold(0i64, |n, &b| {
        n.checked_mul(10)?.checked_add(i64::from(b - b'0'))
    })
}

fn rfc3339(v: &[u8]) -> Option<i64> {
    // YYYY-MM-DDTHH:MM:SS
    if v.len() < 20 || v[4] != b'-' || v[7] != b'-' || v[13] != b':' || v[16] != b':' {
        return None;
    }
    if !matches!(v[10], b'T' | b't') {
        return None;
    }
    let (year, month, day) = (digits(&v[0..4])?, digits(&v[5..7])?, digits(&v[8..10])?);
    let (hour, minute, second) = (
        digits(&v[11..13])?,
        digits(&v[14..16])?,
        digits(&v[17..19])?,
    );
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    // 60: a leap second
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &v[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &fraction[n..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let seconds = h * 3600 + m * 60;
            if *sign == b'+' {
                seconds
            } else {
                -seconds
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let unix = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    // an offset may not carry the time out of years 0000-9999
    (FIRST..=LAST).contains(&unix).then_some(unix)
}

fn leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the date (proleptic Gregorian calendar).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number from [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `unix` as `YYYY-MM-DDTHH:MM:SSZ`, for log lines.
pub fn format_utc(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// How a key is named in log lines: by its `credential=`, never by itself.
pub fn describe_credential(id: Option<&str>) -> String {
    match id {
        Some(id) => format!("credential \"{id}\""),
        None => "no credential=".to_owned(),
    }
}

/// Whether a key that expires at `expires` is expired at `now` (both Unix
/// seconds): from its `expires` second on.
pub fn expired(expires: Option<i64>, now: i64) -> bool {
    expires.is_some_and(|at| now >= at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_and_rfc3339() {
        assert_eq!(parse_expires(b"0"), Ok(0));
        assert_eq!(parse_expires(b"1782863999"), Ok(1_782_863_999));
        assert_eq!(parse_expires(b"253402300799"), Ok(LAST));
        assert_eq!(parse_expires(b"9999-12-31T23:59:59Z"), Ok(LAST));
        assert_eq!(parse_expires(b"0000-01-01T00:00:00Z"), Ok(FIRST));
        assert_eq!(parse_expires(b"1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_expires(b"2026-06-30T23:59:59Z"), Ok(1_782_863_999));
        assert_eq!(
            parse_expires(b"2026-07-01T01:59:59+02:00"),
            Ok(1_782_863_999)
        );
        assert_eq!(
            parse_expires(b"2026-06-30T20:59:59.999-03:00"),
            Ok(1_782_863_999)
        );
        assert_eq!(parse_expires(b"2024-02-29t12:00:00z"), Ok(1_709_208_000));
        assert_eq!(parse_expires(b"2016-12-31T23:59:60Z"), Ok(1_483_228_800));
        assert_eq!(parse_expires(b"1969-12-31T23:59:59Z"), Ok(-1));
    }

    #[test]
    fn refusals() {
        for bad in [
            &b""[..],
            b"soon",
            b"-5",
            b"1e9",
            b"253402300800",
            b"9999-12-31T23:59:59-00:01",
            b"0000-01-01T00:00:00+00:01",
            b"99999999999999999999999",
            b"2026-06-30",
            b"2026-06-30T23:59:59",
            b"2026-06-30 23:59:59Z",
            b"2026-13-01T00:00:00Z",
            b"2026-02-29T00:00:00Z",
            b"2026-04-31T00:00:00Z",
            b"2026-00-10T00:00:00Z",
            b"2026-06-30T24:00:00Z",
            b"2026-06-30T23:60:00Z",
            b"2026-06-30T23:59:61Z",
            b"2026-06-30T23:59:59.Z",
            b"2026-06-30T23:59:59+2:00",
            b"2026-06-30T23:59:59+24:00",
            b"2026-06-30T23:59:59+02:60",
            b"2026-06-30T23:59:59+0200",
            b"2026-06-30T23:59:59ZZ",
            b"+026-06-30T23:59:59Z",
            "2026-06-30T23:59:5\u{663}Z".as_bytes(),
        ] {
            assert!(
                parse_expires(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn formats_round_trip() {
        for unix in [
            0,
            1_782_863_999,
            1_709_208_000,
            951_782_400,
            -1,
            4_102_444_800,
        ] {
            let text = format_utc(unix);
            assert_eq!(parse_expires(text.as_bytes()), Ok(unix), "{text}");
        }
        assert_eq!(format_utc(1_782_863_999), "2026-06-30T23:59:59Z");
    }

    #[test]
    fn expired_from_its_second_on() {
        assert!(!expired(None, i64::MAX));
        assert!(!expired(Some(100), 99));
        assert!(expired(Some(100), 100));
        assert!(expired(Some(100), 101));
    }
}
