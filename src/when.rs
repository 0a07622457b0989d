//! Times as people and agent CLIs write them: the local time of day
//! (`17:00`), and the reset times of rate and usage limits (`5pm`,
//! `5:16 PM`, `Dec 5, 2025 5:00 PM`, `in 2 hours`, `3.5s`, Unix time,
//! RFC 3339).
//!
//! Local time is the time zone of the process (`TZ`, else the system's),
//! read through `localtime_r`; a time zone an agent names after a clock
//! time (`5pm (America/New_York)`) is not looked up: the clock is read in
//! local time, which is where the agent ran. Parsing is pure given `now`
//! and the offset ([`parse_at_offset`]); [`parse`] reads the offset.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far in the past a clock time without a date may be and still mean
/// today: agents write reset times rounded down to the minute or the hour,
/// so one just past is a reset that has come, not one a day away.
const JUST_PAST: i64 = 60 * 60;

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Returns the local time zone's offset from UTC at `at`, in seconds east
/// (0 when the system cannot tell).
pub fn utc_offset(at: SystemTime) -> i64 {
    let t = unix(at) as libc::time_t;
    // SAFETY: all-zero bytes are a valid `tm` (integers and a null pointer).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; `localtime_r` writes
    // only `tm` and returns null on failure.
    let filled = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if filled { tm.tm_gmtoff } else { 0 }
}

/// Formats `at` in local time for people: `17:00`, `17:00:05` when the
/// seconds are not zero, with the date in front (`Dec 3 17:00`) when it is
/// not the local day of `reference`.
pub fn local(at: SystemTime, reference: SystemTime) -> String {
    format_at_offset(at, reference, utc_offset(at), utc_offset(reference))
}

fn format_at_offset(at: SystemTime, reference: SystemTime, offset: i64, ref_offset: i64) -> String {
    let secs = unix(at) + offset;
    let (day, of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let ref_day = (unix(reference) + ref_offset).div_euclid(86_400);
    let (h, m, s) = (of_day / 3600, of_day % 3600 / 60, of_day % 60);
    let clock = if s == 0 {
        format!("{h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    };
    if day == ref_day {
        return clock;
    }
    let (_, month, dom) = civil_from_days(day);
    let name = MONTHS[(month - 1) as usize];
    let mut name = name.to_owned();
    name[..1].make_ascii_uppercase();
    format!("{name} {dom} {clock}")
}

/// Reads a time as an agent or a person writes it, in local time; `None`
/// when the text is none of the forms this module knows.
pub fn parse(text: &str, now: SystemTime) -> Option<SystemTime> {
    parse_at_offset(text, now, utc_offset(now))
}

/// [`parse`] with the local offset given (seconds east of UTC).
///
/// Forms, case-insensitive, with `at ` or `in ` in front and a time zone in
/// parentheses or a `.` after allowed:
/// - Unix time: 9 to 11 digits;
/// - RFC 3339: `2026-01-01T17:00:00Z`;
/// - a duration from `now`: `30` (seconds), `3.5s`, `2h 5m`,
///   `4 days 20 hours 9 minutes`;
/// - a clock time: `5pm`, `5:16 PM`, `17:00`, `17:00:30`, optionally after
///   a date: `Dec 5`, `Dec 5th, 2025`. Without a date it is today's, or
///   tomorrow's when it is more than an hour past.
pub fn parse_at_offset(text: &str, now: SystemTime, offset: i64) -> Option<SystemTime> {
    if let Ok(at) = humantime::parse_rfc3339_weak(text.trim()) {
        return Some(at);
    }
    let mut text = text.trim().to_ascii_lowercase();
    if let Some(open) = text.find('(') {
        text.truncate(open);
    }
    let text = text.trim().trim_end_matches('.').trim();
    let text = text
        .strip_prefix("at ")
        .or_else(|| text.strip_prefix("in "))
        .unwrap_or(text)
        .trim_start_matches('~')
        .trim();
    if text.is_empty() {
        return None;
    }
    if text.len() >= 9 && text.len() <= 11 && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .ok()
            .map(|s| UNIX_EPOCH + Duration::from_secs(s));
    }
    if let Some(d) = duration(text) {
        return Some(now + d);
    }
    clock(text, now, offset)
}

/// Reads `30`, `3.5s`, `2h 5m`, `4 days 20 hours 9 minutes`.
fn duration(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = text.trim();
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let letters = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..letters];
        let seconds = match unit {
            "" if parts == 0 && letters == rest.len() => 1.0,
            "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86_400.0,
            "w" | "week" | "weeks" => 7.0 * 86_400.0,
            _ => return None,
        };
        total += number * seconds;
        parts += 1;
        rest = rest[letters..].trim_start_matches([' ', ',']).trim_start();
        rest = rest.strip_prefix("and ").unwrap_or(rest);
    }
    (parts > 0 && total.is_finite()).then(|| Duration::from_secs_f64(total))
}

/// Reads a clock time, with an optional date before it, in local time.
fn clock(text: &str, now: SystemTime, offset: i64) -> Option<SystemTime> {
    let words: Vec<&str> = text.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    let now_local = unix(now) + offset;
    let today = now_local.div_euclid(86_400);
    let (year_now, _, _) = civil_from_days(today);
    let (date, time_words) = match words.first().and_then(|w| month(w)) {
        Some(m) => {
            let day: i64 = words
                .get(1)?
                .trim_end_matches(|c: char| c.is_ascii_alphabetic())
                .parse()
                .ok()?;
            let year = words
                .get(2)
                .filter(|w| w.len() == 4 && w.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|w| w.parse::<i64>().ok());
            let skip = if year.is_some() { 3 } else { 2 };
            (Some((year, m, day)), &words[skip.min(words.len())..])
        }
        None => (None, &words[..]),
    };
    let of_day = time_of_day(&time_words.concat())?;
    let at_local = match date {
        Some((year, m, d)) => {
            let at = days_from_civil(year.unwrap_or(year_now), m, d) * 86_400 + of_day;
            if year.is_none() && at < now_local - 86_400 {
                days_from_civil(year_now + 1, m, d) * 86_400 + of_day
            } else {
                at
            }
        }
        None => {
            let at = today * 86_400 + of_day;
            if at < now_local - JUST_PAST {
                at + 86_400
            } else {
                at
            }
        }
    };
    let utc = u64::try_from(at_local - offset).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(utc))
}

/// Reads `5pm`, `5:16pm`, `17:00`, `17:00:30` (spaces already removed) as
/// seconds since midnight.
fn time_of_day(text: &str) -> Option<i64> {
    let (clock, half) = if let Some(c) = text.strip_suffix("am") {
        (c, Some(0))
    } else if let Some(c) = text.strip_suffix("pm") {
        (c, Some(12))
    } else {
        (text, None)
    };
    let mut fields = clock.split(':');
    let h: i64 = fields.next()?.parse().ok()?;
    let m: i64 = match fields.next() {
        Some(m) => m.parse().ok()?,
        None if half.is_some() => 0,
        None => return None,
    };
    let s: i64 = fields.next().map_or(Some(0), |s| s.parse().ok())?;
    if fields.next().is_some() || m > 59 || s > 59 {
        return None;
    }
    let h = match half {
        Some(add) if (1..=12).contains(&h) => h % 12 + add,
        Some(_) => return None,
        None if h < 24 => h,
        None => return None,
    };
    Some(h * 3600 + m * 60 + s)
}

fn month(word: &str) -> Option<i64> {
    let word = word.trim_end_matches('.');
    (word.len() >= 3)
        .then(|| MONTHS.iter().position(|m| word.starts_with(m)))
        .flatten()
        .map(|i| i as i64 + 1)
}

fn unix(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-01 16:19:30 UTC.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(days_from_civil(2026, 12, 1) as u64 * 86_400 + 58_770)
    }

    fn utc(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> SystemTime {
        let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    }

    #[test]
    fn civil_dates_round_trip() {
        for day in [-800_000, -1, 0, 59, 10_957, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn reset_times_as_agents_write_them() {
        let now = now();
        let table: Vec<(&str, i64, Option<SystemTime>)> = vec![
            (
                "1764606000",
                0,
                Some(UNIX_EPOCH + Duration::from_secs(1_764_606_000)),
            ),
            ("2026-12-01T17:00:00Z", 0, Some(utc(2026, 12, 1, 17, 0, 0))),
            ("30", 0, Some(now + Duration::from_secs(30))),
            ("3.5s", 0, Some(now + Duration::from_millis(3500))),
            (
                "in 2 hours 5 minutes",
                0,
                Some(now + Duration::from_secs(7500)),
            ),
            (
                "4 days 20 hours 9 minutes",
                0,
                Some(now + Duration::from_secs(4 * 86_400 + 20 * 3600 + 540)),
            ),
            ("~5 minutes.", 0, Some(now + Duration::from_secs(300))),
            ("5pm", 0, Some(utc(2026, 12, 1, 17, 0, 0))),
            (
                "5pm (America/New_York)",
                0,
                Some(utc(2026, 12, 1, 17, 0, 0)),
            ),
            ("at 5:16 PM.", 0, Some(utc(2026, 12, 1, 17, 16, 0))),
            ("17:00:30", 0, Some(utc(2026, 12, 1, 17, 0, 30))),
            ("12am", 0, Some(utc(2026, 12, 2, 0, 0, 0))),
            // Rounded down to the minute and just past: the reset has come.
            ("4:19 PM", 0, Some(utc(2026, 12, 1, 16, 19, 0))),
            // Hours past: tomorrow's.
            ("9am", 0, Some(utc(2026, 12, 2, 9, 0, 0))),
            ("Dec 5th, 2025 5:00 PM", 0, Some(utc(2025, 12, 5, 17, 0, 0))),
            ("Dec 3 9:00 AM", 0, Some(utc(2026, 12, 3, 9, 0, 0))),
            ("Jan 2 9:00 AM", 0, Some(utc(2027, 1, 2, 9, 0, 0))),
            // Local time two hours west of UTC.
            ("5pm", -7200, Some(utc(2026, 12, 1, 19, 0, 0))),
            ("", 0, None),
            ("soon", 0, None),
            ("13pm", 0, None),
            ("17", 0, Some(now + Duration::from_secs(17))),
            ("25:00", 0, None),
        ];
        for (text, offset, want) in table {
            assert_eq!(parse_at_offset(text, now, offset), want, "{text:?}");
        }
    }

    #[test]
    fn local_times_read_short() {
        let now = now();
        let at = |h, m, s| utc(2026, 12, 1, h, m, s);
        assert_eq!(format_at_offset(at(17, 0, 0), now, 0, 0), "17:00");
        assert_eq!(format_at_offset(at(17, 0, 5), now, 0, 0), "17:00:05");
        assert_eq!(format_at_offset(at(17, 0, 0), now, 3600, 3600), "18:00");
        assert_eq!(
            format_at_offset(utc(2026, 12, 3, 9, 30, 0), now, 0, 0),
            "Dec 3 09:30"
        );
    }
}
