//! `disk`: used space and inodes of the filesystem holding a path (statvfs).

use std::path::Path;

use super::{Check, Context, Outcome, Status, human_bytes};

pub struct Disk<'a> {
    pub path: &'a Path,
    pub max_used: Option<f64>,
    pub max_inodes: Option<f64>,
}

/// Usage of one filesystem, as `df` computes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub size: u64,
    pub avail: u64,
    pub used_percent: f64,
    pub inodes_used_percent: Option<f64>,
}

pub fn usage(path: &Path) -> Result<Usage, String> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|e| format!("statvfs {}: {e}", path.display()))?;
    let frag = st.fragment_size() as u64;
    let blocks = st.blocks() as u64;
    let free = st.blocks_free() as u64;
    let avail = st.blocks_available() as u64;
    let used = blocks.saturating_sub(free);
    // df's formula: used / (used + available to unprivileged users).
    let used_percent = if used + avail == 0 { 0.0 } else { used as f64 * 100.0 / (used + avail) as f64 };
    let files = st.files() as u64;
    let inodes_used_percent = (files > 0).then(|| (files - st.files_free() as u64) as f64 * 100.0 / files as f64);
    Ok(Usage { size: blocks * frag, avail: avail * frag, used_percent, inodes_used_percent })
}

impl Check for Disk<'_> {
    const KIND: &'static str = "disk";

    fn target(&self) -> String {
        format!("localhost:{}", self.path.display())
    }

    async fn run(&self, _ctx: &Context) -> Outcome {
        // statvfs on a hung network mount never returns: off the async threads, so the check's time limit still ends it.
        let path = self.path.to_path_buf();
        let u = match tokio::task::spawn_blocking(move || usage(&path)).await {
            Ok(Ok(u)) => u,
            Ok(Err(e)) => return Outcome::new(Status::Error, e),
            Err(e) => return Outcome::new(Status::Error, e.to_string()),
        };
        let mut problems = Vec::new();
        if let Some(max) = self.max_used.filter(|m| u.used_percent > *m) {
            problems.push(format!("{:.1}% used of {} (limit {max}%)", u.used_percent, self.path.display()));
        }
        if let (Some(max), Some(iu)) = (self.max_inodes, u.inodes_used_percent)
            && iu > max
        {
            problems.push(format!("{iu:.1}% of inodes used on {} (limit {max}%)", self.path.display()));
        }
        let (status, summary) = if problems.is_empty() {
            (Status::Ok, format!("{:.1}% used of {}, {} free", u.used_percent, self.path.display(), human_bytes(u.avail)))
        } else {
            (Status::Failing, format!("{}, {} free", problems.join("; "), human_bytes(u.avail)))
        };
        let mut o = Outcome::new(status, summary)
            .with("path", self.path.display().to_string())
            .with("used_percent", (u.used_percent * 10.0).round() / 10.0)
            .with("size_bytes", u.size)
            .with("avail_bytes", u.avail);
        if let Some(max) = self.max_used {
            o = o.with("max_used_percent", max);
        }
        if let Some(iu) = u.inodes_used_percent {
            o = o.with("inodes_used_percent", (iu * 10.0).round() / 10.0);
        }
        o
    }
}
