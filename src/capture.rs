//! Output of child processes (local shells, SSH commands) read through a cap:
//! the first and the last bytes are kept, the middle is counted and dropped,
//! and the pipe is drained to its end so the child never blocks on a full
//! pipe and keeps its exit status. A command printing 1.5 GB costs at most
//! `HEAD + TAIL` bytes of memory per stream.

use std::collections::VecDeque;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes kept from the start of a stream (what a command says first: headers, the first error).
pub const HEAD: usize = 64 * 1024;
/// Bytes kept from the end of a stream (errors come last).
pub const TAIL: usize = 64 * 1024;

/// What was kept of one stream, and how much it held in all.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Capped {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_max: usize,
    tail_max: usize,
    total: u64,
}

impl Capped {
    pub fn new(head_max: usize, tail_max: usize) -> Self {
        Self { head: Vec::new(), tail: VecDeque::new(), head_max, tail_max, total: 0 }
    }

    /// Takes the next bytes of the stream.
    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.head_max.saturating_sub(self.head.len());
        let (first, rest) = bytes.split_at(room.min(bytes.len()));
        self.head.extend_from_slice(first);
        bytes = rest;
        if bytes.len() >= self.tail_max {
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - self.tail_max..]);
            return;
        }
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.tail_max);
        self.tail.drain(..overflow);
        self.tail.extend(bytes);
    }

    /// Every byte the stream carried, kept or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes dropped from the middle.
    pub fn dropped(&self) -> u64 {
        self.total - self.head.len() as u64 - self.tail.len() as u64
    }

    /// The kept text (lossy UTF-8), with `[… N bytes truncated]` where the middle was dropped.
    pub fn text(&self) -> String {
        let (a, b) = self.tail.as_slices();
        let tail: Vec<u8> = [a, b].concat();
        if self.dropped() == 0 {
            return String::from_utf8_lossy(&[self.head.as_slice(), &tail].concat()).into_owned();
        }
        format!("{}\n[… {} bytes truncated]\n{}", String::from_utf8_lossy(&self.head), self.dropped(), String::from_utf8_lossy(&tail))
    }
}

/// Reads a stream to its end, keeping `HEAD` + `TAIL` bytes of it.
pub async fn drain<R: AsyncRead + Unpin>(reader: Option<R>) -> std::io::Result<Capped> {
    let mut kept = Capped::new(HEAD, TAIL);
    let Some(mut r) = reader else { return Ok(kept) };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(kept);
        }
        kept.push(&buf[..n]);
    }
}

/// Drains a child's stdout and stderr together (one full pipe must not stall
/// the other), each through the cap; returns their texts.
pub async fn both<O: AsyncRead + Unpin, E: AsyncRead + Unpin>(stdout: Option<O>, stderr: Option<E>) -> std::io::Result<(String, String)> {
    let (out, err) = tokio::try_join!(drain(stdout), drain(stderr))?;
    Ok((out.text(), err.text()))
}

/// Cuts text for evidence to at most about `max` bytes: a quarter from the
/// start, the rest from the end, on character boundaries, noting the cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut head_end = max / 4;
    while !text.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = text.len() - (max - max / 4);
    while !text.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    format!("{}\n[… {} bytes truncated]\n{}", &text[..head_end], tail_start - head_end, &text[tail_start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_kept_whole() {
        let mut c = Capped::new(4, 4);
        c.push(b"abc");
        c.push(b"def");
        assert_eq!((c.text(), c.total(), c.dropped()), ("abcdef".to_string(), 6, 0));
    }

    #[test]
    fn the_middle_is_dropped_and_counted_whatever_the_chunking() {
        let stream: Vec<u8> = (0..100u8).map(|i| b'a' + i % 26).collect();
        for chunk in [1, 3, 7, 64, 100] {
            let mut c = Capped::new(10, 5);
            for part in stream.chunks(chunk) {
                c.push(part);
            }
            let want = format!("{}\n[… 85 bytes truncated]\n{}", String::from_utf8_lossy(&stream[..10]), String::from_utf8_lossy(&stream[95..]));
            assert_eq!((c.text(), c.total()), (want, 100), "chunks of {chunk}");
        }
    }

    /// A reader of `n` bytes that allocates nothing: a command printing gigabytes.
    struct Endless(u64);

    impl AsyncRead for Endless {
        fn poll_read(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> std::task::Poll<std::io::Result<()>> {
            let n = (buf.remaining() as u64).min(self.0) as usize;
            buf.put_slice(&vec![b'y'; n]);
            self.0 -= n as u64;
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_long_stream_keeps_head_and_tail_only() {
        let c = drain(Some(Endless(1 << 28))).await.unwrap_or_default();
        assert_eq!((c.total(), c.dropped()), (1 << 28, (1 << 28) - (HEAD + TAIL) as u64));
        assert!(c.text().len() < HEAD + TAIL + 64);
    }

    #[test]
    fn clip_keeps_both_ends_on_char_boundaries() {
        let text = format!("first{}last", "é".repeat(1000));
        let clipped = clip(&text, 40);
        assert!(clipped.starts_with("first") && clipped.ends_with("last") && clipped.contains("bytes truncated]"), "{clipped}");
        assert_eq!(clip("short", 40), "short");
    }
}
