//! When a check is due: `every: 5m` (since its last run), or `at: "0 2 * * *"`
//! (five-field cron in the heartbeat's time zone: due once a scheduled time
//! has passed since the last run, once however many were missed).

use std::time::Duration;

use chrono::{DateTime, Datelike, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Every(Duration),
    Cron { expr: Cron, tz: Tz },
}

/// A parsed five-field cron expression (minute hour day-of-month month day-of-week).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    pub text: String,
    minutes: Vec<bool>,
    hours: Vec<bool>,
    dom: Vec<bool>,
    months: Vec<bool>,
    dow: Vec<bool>,
    dom_any: bool,
    dow_any: bool,
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(s: &str, min: u32, max: u32, names: &[&str], name_base: u32) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u32 + name_base);
    }
    let v: u32 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if v < min || v > max {
        return Err(format!("{v} is outside {min}-{max}"));
    }
    Ok(v)
}

fn field(text: &str, min: u32, max: u32, names: &[&str], name_base: u32, what: &str) -> Result<(Vec<bool>, bool), String> {
    let mut set = vec![false; max as usize + 1];
    let any = text == "*";
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(|| format!("{what}: bad step in `{part}`"))?),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, min, max, names, name_base).map_err(|e| format!("{what}: {e}"))?, value(b, min, max, names, name_base).map_err(|e| format!("{what}: {e}"))?)
        } else {
            let v = value(range, min, max, names, name_base).map_err(|e| format!("{what}: {e}"))?;
            (v, if part.contains('/') { max } else { v })
        };
        if lo > hi {
            return Err(format!("{what}: range `{range}` runs backwards"));
        }
        let mut v = lo;
        while v <= hi {
            set[v as usize] = true;
            v += step;
        }
    }
    Ok((set, any))
}

impl Cron {
    pub fn parse(text: &str) -> Result<Self, String> {
        let expanded = match text.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            t => t,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        let [m, h, dom, mon, dow] = parts.as_slice() else {
            return Err(format!("`{text}` has {} fields; cron needs five: minute hour day-of-month month day-of-week", parts.len()));
        };
        let (minutes, _) = field(m, 0, 59, &[], 0, "minute")?;
        let (hours, _) = field(h, 0, 23, &[], 0, "hour")?;
        let (dom_set, dom_any) = field(dom, 1, 31, &[], 0, "day of month")?;
        let (months, _) = field(mon, 1, 12, &MONTHS, 1, "month")?;
        let (mut dow_set, dow_any) = field(dow, 0, 7, &DAYS, 0, "day of week")?;
        if dow_set[7] {
            dow_set[0] = true;
        }
        Ok(Self { text: text.to_string(), minutes, hours, dom: dom_set, months, dow: dow_set, dom_any, dow_any })
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        let dom = self.dom[d.day() as usize];
        let dow = self.dow[d.weekday().num_days_from_sunday() as usize];
        // Vixie cron: when both are restricted, either may match.
        let day = match (self.dom_any, self.dow_any) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        };
        day && self.months[d.month() as usize]
    }

    /// The first scheduled time strictly after `t`, in `tz`. Local times that
    /// do not exist (a DST gap) are skipped; repeated ones take the first.
    pub fn next_after(&self, t: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&tz);
        let start = local.date_naive();
        for offset in 0..(366 * 5) {
            let day = start.checked_add_days(Days::new(offset))?;
            if !self.day_matches(day) {
                continue;
            }
            for h in (0..24).filter(|h| self.hours[*h as usize]) {
                for m in (0..60).filter(|m| self.minutes[*m as usize]) {
                    let Some(naive) = day.and_hms_opt(h, m, 0) else { continue };
                    let Some(at) = tz.from_local_datetime(&naive).earliest() else { continue };
                    let at = at.with_timezone(&Utc);
                    if at > t {
                        return Some(at);
                    }
                }
            }
        }
        None
    }
}

impl Schedule {
    /// Due if never run, or if the interval (or a scheduled time) has passed since the last run.
    pub fn is_due(&self, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        let Some(last) = last else { return true };
        match self {
            Schedule::Every(every) => now - last >= chrono::Duration::from_std(*every).unwrap_or(chrono::Duration::MAX),
            Schedule::Cron { expr, tz } => expr.next_after(last, *tz).is_some_and(|next| next <= now),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Schedule::Every(d) => format!("every {}", crate::duration::format(*d)),
            Schedule::Cron { expr, tz } => format!("at `{}` ({tz})", expr.text),
        }
    }
}

/// Parses a time zone name such as `UTC` or `Europe/Berlin`.
pub fn parse_tz(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| format!("unknown time zone `{name}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single().unwrap_or_default()
    }

    fn cron(s: &str) -> Schedule {
        Schedule::Cron { expr: Cron::parse(s).unwrap_or_else(|e| panic!("{e}")), tz: Tz::UTC }
    }

    #[test]
    fn missed_runs_fire_once() {
        let s = cron("0 2 * * *");
        let last = at(2026, 11, 20, 2, 0);
        // Three 02:00s were missed while nothing ran: due now, once.
        assert!(s.is_due(Some(last), at(2026, 11, 23, 9, 0)));
        // After that run, not due again until the next 02:00.
        let ran = at(2026, 11, 23, 9, 0);
        assert!(!s.is_due(Some(ran), at(2026, 11, 24, 1, 59)));
        assert!(s.is_due(Some(ran), at(2026, 11, 24, 2, 0)));
    }

    #[test]
    fn next_times() {
        let t = at(2026, 11, 23, 10, 7); // a Monday
        let cases = [
            ("*/15 * * * *", at(2026, 11, 23, 10, 15)),
            ("0 2 * * *", at(2026, 11, 24, 2, 0)),
            ("30 9 * * 1-5", at(2026, 11, 24, 9, 30)),
            ("0 0 1 * *", at(2026, 12, 1, 0, 0)),
            ("0 12 * * sun", at(2026, 11, 29, 12, 0)),
            ("0 12 * jan *", at(2027, 1, 1, 12, 0)),
            ("@hourly", at(2026, 11, 23, 11, 0)),
            ("0 0 13 * 5", at(2026, 11, 27, 0, 0)), // dom or dow: Friday the 27th comes first
        ];
        for (expr, want) in cases {
            assert_eq!(Cron::parse(expr).ok().and_then(|c| c.next_after(t, Tz::UTC)), Some(want), "{expr}");
        }
    }

    #[test]
    fn time_zones_shift_the_schedule() {
        let c = Cron::parse("0 2 * * *").unwrap_or_else(|e| panic!("{e}"));
        let berlin: Tz = "Europe/Berlin".parse().unwrap_or(Tz::UTC);
        assert_eq!(c.next_after(at(2026, 11, 23, 0, 0), berlin), Some(at(2026, 11, 23, 1, 0)));
        // 02:30 does not exist on the spring-forward night in Berlin: skipped to the next day.
        let c = Cron::parse("30 2 * * *").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.next_after(at(2026, 3, 28, 12, 0), berlin), Some(at(2026, 3, 30, 0, 30)));
    }

    #[test]
    fn bad_expressions_say_why() {
        for (expr, why) in [
            ("0 2 * *", "has 4 fields"),
            ("61 * * * *", "minute: 61 is outside 0-59"),
            ("0 25 * * *", "hour: 25 is outside 0-23"),
            ("0 0 * foo *", "month: `foo` is not a number"),
            ("*/0 * * * *", "minute: bad step"),
            ("0 5-2 * * *", "runs backwards"),
        ] {
            let err = Cron::parse(expr).err().unwrap_or_default();
            assert!(err.contains(why), "{expr}: {err}");
        }
    }
}
