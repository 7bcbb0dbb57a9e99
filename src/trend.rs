//! Disk trends: a short history of each disk check's usage, the growth rate
//! over the last week (least squares), and how long until the limit and
//! until full, so a disk filling at 2 %/day is raised before it crosses.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub used_percent: f64,
}

/// Samples kept per check (at most this many, and none older than 30 days).
const KEEP: usize = 500;

pub fn push(history: &mut Vec<Sample>, s: Sample) {
    history.push(s);
    let cutoff = s.at - Duration::days(30);
    history.retain(|x| x.at >= cutoff);
    if history.len() > KEEP {
        let drop = history.len() - KEEP;
        history.drain(..drop);
    }
}

/// Growth in percentage points per day over the last 7 days, when the
/// samples span at least an hour (fewer than 3 samples say nothing).
pub fn growth_per_day(history: &[Sample], now: DateTime<Utc>) -> Option<f64> {
    let recent: Vec<&Sample> = history.iter().filter(|s| s.at >= now - Duration::days(7)).collect();
    if recent.len() < 3 {
        return None;
    }
    let t0 = recent[0].at;
    let xs: Vec<f64> = recent.iter().map(|s| (s.at - t0).num_seconds() as f64 / 86_400.0).collect();
    let span = xs.last().copied().unwrap_or(0.0) - xs[0];
    if span < 1.0 / 24.0 {
        return None;
    }
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let my = recent.iter().map(|s| s.used_percent).sum::<f64>() / n;
    let sxy: f64 = xs.iter().zip(&recent).map(|(x, s)| (x - mx) * (s.used_percent - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Days until `target` percent at `per_day` growth from `used`; `None` when not growing.
pub fn days_until(used: f64, target: f64, per_day: f64) -> Option<f64> {
    (per_day > 0.0 && used < target).then(|| (target - used) / per_day)
}

/// Whether `days` (until the limit) fall within a `forecast` horizon.
pub fn within(days: f64, forecast: std::time::Duration) -> bool {
    days * 86_400.0 < forecast.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).single().unwrap_or_default()
    }

    #[test]
    fn two_percent_a_day_is_measured_and_projected() {
        let mut h = Vec::new();
        for (i, day) in (17..=23).enumerate() {
            push(&mut h, Sample { at: at(day, 12), used_percent: 60.0 + 2.0 * i as f64 });
        }
        let g = growth_per_day(&h, at(23, 12)).unwrap_or_default();
        assert!((g - 2.0).abs() < 1e-9, "{g}");
        assert_eq!(days_until(72.0, 80.0, g).map(|d| (d * 10.0).round() / 10.0), Some(4.0));
        assert_eq!(days_until(72.0, 80.0, -1.0), None);
        assert_eq!(days_until(85.0, 80.0, 2.0), None, "already past the limit");
        // The seed's horizon: 30 days. Four days out warns; 40 does not; nor does a 3-day forecast at 4 days.
        let days = |n: u64| std::time::Duration::from_secs(n * 86_400);
        assert!(within(4.0, days(30)));
        assert!(!within(40.0, days(30)));
        assert!(!within(4.0, days(3)));
    }

    #[test]
    fn too_few_or_too_close_samples_say_nothing() {
        let h = vec![Sample { at: at(23, 10), used_percent: 50.0 }, Sample { at: at(23, 11), used_percent: 51.0 }];
        assert_eq!(growth_per_day(&h, at(23, 11)), None);
        let close: Vec<Sample> = (0..5).map(|i| Sample { at: at(23, 10) + Duration::minutes(i), used_percent: 50.0 + i as f64 }).collect();
        assert_eq!(growth_per_day(&close, at(23, 11)), None, "five minutes of samples are noise");
    }

    #[test]
    fn old_samples_are_dropped() {
        let mut h = vec![Sample { at: at(23, 0) - Duration::days(40), used_percent: 10.0 }];
        push(&mut h, Sample { at: at(23, 0), used_percent: 20.0 });
        assert_eq!(h.len(), 1);
    }
}
