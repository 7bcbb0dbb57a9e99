//! Benchmark: policy decisions per second. The gate of the repository's
//! default workspace (AGENTS.md: its rules, limits and protected targets)
//! judges every action kind on 1,000 targets at every level, with and
//! without history (rate limits, failures), in a loop. In-process: what a
//! pass pays per planned action. Run with `cargo bench --bench policy`.

#![allow(clippy::expect_used)] // a benchmark harness: failing loudly is the point

use std::hint::black_box;
use std::time::Instant;

use nightshift::actions::ActionKind;
use nightshift::policy::{History, Subject, decide};
use nightshift::severity::Level;

const DECISIONS: usize = 2_000_000;

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let ws = nightshift::workspace::load(root).expect("the default workspace validates");
    let levels = [Level::L1, Level::L2, Level::L3, Level::L4];
    let targets: Vec<String> = (0..1000)
        .map(|i| match i % 4 {
            0 => format!("shop/deployment-{i}"),
            1 => format!("/var/log/app-{i}"),
            2 => format!("prod/db-{i}"),
            _ => format!("node-{i}"),
        })
        .collect();
    let histories = [History::default(), History { target_last_hour: 3, global_last_hour: 12, consecutive_failures: 2, distrusted: None, earned: Vec::new() }];
    let mut subjects = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        for kind in ActionKind::ALL {
            let mut s = Subject::new(kind, t);
            s.level = levels[i % levels.len()];
            s.check = Some(format!("check-{}", i % 50));
            s.blast_radius = 1 + (i % 7) as u32;
            subjects.push(s);
        }
    }
    // Warm up, then measure.
    for s in subjects.iter().take(10_000) {
        black_box(decide(&ws.policy, s, &histories[0]));
    }
    let mut by_decision = std::collections::BTreeMap::<String, usize>::new();
    let started = Instant::now();
    for i in 0..DECISIONS {
        let v = decide(&ws.policy, &subjects[i % subjects.len()], &histories[i % 2]);
        if i < subjects.len() * 2 {
            *by_decision.entry(v.decision.to_string()).or_default() += 1;
        }
        black_box(v);
    }
    let took = started.elapsed();
    println!("policy: {} rules in the default workspace's AGENTS.md; {} distinct subjects", ws.policy.rules.len(), subjects.len());
    println!("policy: {DECISIONS} decisions in {:.2} s: {:.0} decisions/s, {:.2} µs each", took.as_secs_f64(), DECISIONS as f64 / took.as_secs_f64(), took.as_secs_f64() * 1e6 / DECISIONS as f64);
    println!("policy: decisions over one pass of the subjects: {by_decision:?}");
}
