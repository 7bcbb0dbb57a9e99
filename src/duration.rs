//! Human durations as written in the workspace files: `30s`, `5m`, `1h`, `1d`,
//! `1h30m`. Bare numbers and words (`5 minutes`) are rejected with a hint, so a
//! typo can never silently mean "every second".

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration parsed from the compact workspace syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

/// The longest duration accepted anywhere (workspace files, the command
/// line): 100 years of 365 days. Longer ones are typos or attempts to
/// overflow the clock arithmetic, never a schedule or a retention.
pub const MAX: Duration = Duration::from_secs(36_500 * 86_400);

/// Why a duration could not be parsed; the message is shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration `{input}`: write a number and a unit (ms, s, m, h, d, w), e.g. 30s, 5m, 1h, 1d")]
    Syntax { input: String },
    #[error("duration `{input}` is longer than the longest nightshift accepts, 36500d (100 years): write a shorter one, e.g. 365d")]
    TooLong { input: String },
}

/// `t + d`, or None past the range of timestamps.
pub fn after(t: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
    chrono::Duration::from_std(d).ok().and_then(|d| t.checked_add_signed(d))
}

/// `t - d`, or None past the range of timestamps.
pub fn before(t: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
    chrono::Duration::from_std(d).ok().and_then(|d| t.checked_sub_signed(d))
}

impl HumanDuration {
    pub fn as_duration(self) -> Duration {
        self.0
    }

    pub fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }
}

/// Parses `30s`, `5m`, `1h`, `1d`, `2w`, `500ms` and concatenations
/// (`1h30m`), at most `MAX`.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let err = || DurationError::Syntax { input: input.to_string() };
    let too_long = || DurationError::TooLong { input: input.to_string() };
    let s = input.trim();
    if s.is_empty() {
        return Err(err());
    }
    let bytes = s.as_bytes();
    let mut total: u128 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(err());
        }
        let n: u128 = s[start..i].parse().map_err(|_| err())?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let millis_per_unit: u128 = match &s[unit_start..i] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return Err(err()),
        };
        total = total.checked_add(n.checked_mul(millis_per_unit).ok_or_else(too_long)?).ok_or_else(too_long)?;
    }
    if total > MAX.as_millis() {
        return Err(too_long());
    }
    let millis = u64::try_from(total).map_err(|_| too_long())?;
    Ok(Duration::from_millis(millis))
}

/// Formats a duration back into the compact syntax (`90s` → `1m30s`).
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{}", ms / size, unit));
            ms %= size;
        }
    }
    out
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format(self.0))
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).map(HumanDuration)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 30s, 5m, 1h or 1d")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                parse(v).map(HumanDuration).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                Err(E::custom(format!("invalid duration `{v}`: a bare number has no unit; write e.g. {v}s or {v}m")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                self.visit_u64(v.unsigned_abs())
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A moment as nightshift writes it everywhere (notes, audit, state): RFC 3339, UTC, seconds.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Reads what [`timestamp`] wrote (any RFC 3339 offset is accepted and turned to UTC).
pub fn parse_ts(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.with_timezone(&chrono::Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let cases = [("30s", 30_000), ("5m", 300_000), ("1h", 3_600_000), ("1d", 86_400_000), ("1h30m", 5_400_000), ("500ms", 500), ("2w", 1_209_600_000)];
        for (input, ms) in cases {
            assert_eq!(parse(input), Ok(Duration::from_millis(ms)), "{input}");
        }
    }

    #[test]
    fn rejects_words_spaces_and_bare_numbers() {
        for input in ["5 minutes", "5min", "", "m5", "1.5h", "5", "-5m", "5m ago"] {
            assert!(parse(input).is_err(), "{input} should be rejected");
        }
    }

    #[test]
    fn durations_beyond_a_hundred_years_are_refused_with_the_fix() {
        assert_eq!(parse("36500d"), Ok(MAX));
        for input in ["36501d", "100000000d", "99999999999999999999999999999999999999w"] {
            let e = parse(input).err();
            assert_eq!(e, Some(DurationError::TooLong { input: input.into() }), "{input}");
        }
        let text = parse("100000000d").err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(text, "duration `100000000d` is longer than the longest nightshift accepts, 36500d (100 years): write a shorter one, e.g. 365d");
    }

    #[test]
    fn clock_arithmetic_is_checked() {
        let t = chrono::DateTime::<Utc>::MAX_UTC;
        assert_eq!(after(t, Duration::from_secs(1)), None);
        assert_eq!(before(chrono::DateTime::<Utc>::MIN_UTC, Duration::from_secs(1)), None);
        let epoch = chrono::DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(after(epoch, Duration::from_secs(60)).map(|t| t.timestamp()), Some(60));
        assert_eq!(before(epoch, MAX).map(|t| t.timestamp()), Some(-(MAX.as_secs() as i64)));
    }

    #[test]
    fn formats_round_trip() {
        for input in ["30s", "5m", "1h30m", "1d", "500ms"] {
            assert_eq!(format(parse(input).unwrap_or_default()), input);
        }
    }
}
