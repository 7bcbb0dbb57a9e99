//! Measuring one child process: wall time and its own peak RSS (wait4).
#![allow(dead_code, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the command, returning (wall time, peak RSS in KiB, exit code) of that child alone.
pub fn measure(cmd: &mut Command) -> (Duration, i64, i32) {
    measure_into(cmd.stdout(Stdio::null()))
}

/// `measure`, with the command's stdout left as the caller set it (a file, to read afterwards).
pub fn measure_into(cmd: &mut Command) -> (Duration, i64, i32) {
    let start = Instant::now();
    let child = cmd.stderr(Stdio::null()).spawn().expect("spawn nightshift");
    let pid = child.id() as i32;
    let mut status = 0;
    // SAFETY: wait4 on our own child with valid out-pointers; the Child is not waited on elsewhere.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { nix::libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed");
    std::mem::forget(child);
    (start.elapsed(), usage.ru_maxrss, nix::libc::WEXITSTATUS(status))
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
