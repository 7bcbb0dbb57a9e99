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

type Job = (Vec<u8>, oneshot::Sender<io::Result<()>>);

/// The writing end, cheap to clone into request handlers.
#[derive(Clone)]
pub struct IntakeLog {
    tx: mpsc::Sender<Job>,
}

impl IntakeLog {
    /// Starts the writer thread for `path`.
    pub fn open(path: PathBuf) -> io::Result<Self> {
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new().name("intake-writer".into()).spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                    if batch.len() >= 4096 {
                        break;
                    }
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
        self.tx.send((bytes, reply)).map_err(|_| io::Error::other("the intake writer stopped"))?;
        wait.await.map_err(|_| io::Error::other("the intake writer stopped"))?
    }
}

fn offset_path(log: &Path) -> PathBuf {
    log.with_extension("offset")
}

/// Alerts appended since the last `commit_offset`, and the offset after them.
/// A torn last line (a crash mid-append, never acknowledged) is left for later.
pub fn pending(log: &Path) -> io::Result<(Vec<Alert>, u64)> {
    let start: u64 = std::fs::read_to_string(offset_path(log)).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
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

/// Records that everything before `offset` is handled; starts a fresh log
/// when everything in it is.
pub fn commit_offset(log: &Path, offset: u64) -> io::Result<()> {
    let len = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let offset = if offset == len && len > 8 * 1024 * 1024 {
        // Everything handled and the log is large: truncate (the writer appends at the end, so
        // anything written meanwhile lands after the cut and is picked up from offset 0).
        OpenOptions::new().write(true).open(log)?.set_len(0)?;
        0
    } else {
        offset
    };
    crate::memory::atomic_write(&offset_path(log), offset.to_string().as_bytes()).map_err(|e| io::Error::other(e.to_string()))
}
