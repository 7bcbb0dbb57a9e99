//! The intake journal, `memory/state/intake.jsonl`: every accepted alert is
//! appended and fsynced before the sender gets its 200, so an accepted alert
//! survives a crash. Appends from concurrent requests are group-committed:
//! one writer thread writes whatever has queued up and syncs once for all.
//! Passes of the daemon read from a persisted offset and advance it once the
//! alerts are in memory.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::pipeline::Alert;

/// What the writer thread does, in the order asked.
enum Job {
    /// Append these lines and sync.
    Append(Vec<u8>, oneshot::Sender<io::Result<()>>),
    /// Record that everything before this offset is handled.
    Commit(u64, oneshot::Sender<io::Result<()>>),
}

/// The writing end, cheap to clone into request handlers.
#[derive(Clone)]
pub struct IntakeLog {
    tx: mpsc::Sender<Job>,
}

impl IntakeLog {
    /// Starts the writer thread for `path`. A torn last line (a crash while
    /// appending: never acknowledged) is cut first, so the next append can
    /// never merge with it; an offset past the end (a crash between
    /// truncating the log and recording the offset) goes back to 0.
    pub fn open(path: PathBuf) -> io::Result<Self> {
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(&path)?;
        let mut text = Vec::new();
        file.read_to_end(&mut text)?;
        let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) as u64;
        if complete < text.len() as u64 {
            file.set_len(complete)?;
            file.sync_data()?;
        }
        if read_offset(&path) > complete {
            write_offset(&path, 0)?;
        }
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new().name("intake-writer".into()).spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = Vec::new();
                let mut next = Some(first);
                // Appends that queued up are written together and synced once; a commit
                // runs alone, between appends, so it can never cut one that was acknowledged.
                while let Some(job) = next.take() {
                    match job {
                        Job::Append(bytes, reply) => {
                            batch.push((bytes, reply));
                            if batch.len() < 4096 {
                                next = rx.try_recv().ok();
                            }
                        }
                        Job::Commit(offset, reply) => {
                            flush(&mut file, std::mem::take(&mut batch));
                            let _ = reply.send(commit(&mut file, &path, offset));
                        }
                    }
                }
                flush(&mut file, batch);
            }
        })?;
        Ok(Self { tx })
    }

    /// Appends alerts (one JSON line each) and returns once they are on disk.
    pub async fn append(&self, alerts: &[Alert]) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(alerts.len() * 256);
        for a in alerts {
            serde_json::to_writer(&mut bytes, a).map_err(io::Error::other)?;
            bytes.push(b'\n');
        }
        let (reply, wait) = oneshot::channel();
        self.tx.send(Job::Append(bytes, reply)).map_err(|_| io::Error::other("the intake writer stopped"))?;
        wait.await.map_err(|_| io::Error::other("the intake writer stopped"))?
    }

    /// Records that everything before `offset` is handled; the writer starts
    /// a fresh log when everything in it is (and it is large).
    pub async fn commit_offset(&self, offset: u64) -> io::Result<()> {
        let (reply, wait) = oneshot::channel();
        self.tx.send(Job::Commit(offset, reply)).map_err(|_| io::Error::other("the intake writer stopped"))?;
        wait.await.map_err(|_| io::Error::other("the intake writer stopped"))?
    }
}

/// Writes a batch of appends, syncs once, and answers each.
fn flush(file: &mut File, batch: Vec<(Vec<u8>, oneshot::Sender<io::Result<()>>)>) {
    if batch.is_empty() {
        return;
    }
    let mut result = Ok(());
    for (bytes, _) in &batch {
        if let Err(e) = file.write_all(bytes) {
            result = Err(e);
            break;
        }
    }
    let result = result.and_then(|_| file.sync_data());
    for (_, reply) in batch {
        let _ = reply.send(result.as_ref().map(|_| ()).map_err(|e| io::Error::new(e.kind(), e.to_string())));
    }
}

/// The writer's commit: nothing is appended while it runs. The log is cut
/// only when the offset is its whole length, and the cut comes before the
/// offset's reset (a crash between them leaves an offset past the end, which
/// `open` and `pending` read as 0: nothing is lost).
fn commit(file: &mut File, log: &Path, offset: u64) -> io::Result<()> {
    let len = file.metadata()?.len();
    if offset == len && len > TRUNCATE_AT {
        file.set_len(0)?;
        file.sync_data()?;
        return write_offset(log, 0);
    }
    write_offset(log, offset)
}

/// A log this large whose every alert is handled starts afresh.
const TRUNCATE_AT: u64 = 8 * 1024 * 1024;

fn read_offset(log: &Path) -> u64 {
    std::fs::read_to_string(offset_path(log)).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

fn write_offset(log: &Path, offset: u64) -> io::Result<()> {
    crate::memory::atomic_write(&offset_path(log), offset.to_string().as_bytes()).map_err(|e| io::Error::other(e.to_string()))
}

fn offset_path(log: &Path) -> PathBuf {
    log.with_extension("offset")
}

/// Alerts appended since the last `commit_offset`, and the offset after them.
/// A torn last line (a crash mid-append, never acknowledged) is left for later.
pub fn pending(log: &Path) -> io::Result<(Vec<Alert>, u64)> {
    let start = read_offset(log);
    let mut file = match File::open(log) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let start = if start > len { 0 } else { start };
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let alerts = buf[..complete].split(|b| *b == b'\n').filter(|l| !l.is_empty()).filter_map(|l| serde_json::from_slice(l).ok()).collect();
    Ok((alerts, start + complete as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(n: usize) -> Alert {
        crate::pipeline::parse_event(format!(r#"{{"source":"ci","service":"s{n}","summary":"x"}}"#).as_bytes()).unwrap_or_default().remove(0)
    }

    #[tokio::test]
    async fn a_torn_line_from_a_crash_is_cut_and_never_merges_with_the_next_alert() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("intake.jsonl");
        // A crash mid-append left half a line (never acknowledged).
        std::fs::write(&path, b"{\"status\":\"firing\",\"lab").unwrap_or_else(|e| panic!("{e}"));
        let log = IntakeLog::open(path.clone()).unwrap_or_else(|e| panic!("{e}"));
        log.append(&[alert(1)]).await.unwrap_or_else(|e| panic!("{e}"));
        let (got, _) = pending(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, vec![alert(1)]);
    }

    #[tokio::test]
    async fn committing_a_large_handled_log_never_cuts_an_alert_acknowledged_meanwhile() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("intake.jsonl");
        let log = IntakeLog::open(path.clone()).unwrap_or_else(|e| panic!("{e}"));
        // Past the truncation size, every alert handled.
        let big: Vec<Alert> = (0..60_000).map(alert).collect();
        log.append(&big).await.unwrap_or_else(|e| panic!("{e}"));
        let (all, offset) = pending(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(all.len() == big.len() && offset > TRUNCATE_AT);
        // An alert acknowledged between reading the log and committing its offset survives.
        log.append(&[alert(99_999)]).await.unwrap_or_else(|e| panic!("{e}"));
        log.commit_offset(offset).await.unwrap_or_else(|e| panic!("{e}"));
        let (left, _) = pending(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(left, vec![alert(99_999)]);
        // Once that one is handled too, the log starts afresh.
        let (_, end) = pending(&path).unwrap_or_else(|e| panic!("{e}"));
        log.commit_offset(end).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(1), 0);
        assert_eq!(pending(&path).map(|p| p.0.len()).unwrap_or(1), 0);
    }
}
