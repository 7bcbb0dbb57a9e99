//! Integrity tests of a backup file, chosen by its name, under limits: a
//! gzip stream read to its end (CRC checked), a tar archive walked header by
//! header, a `.sha256` sidecar compared. An archive is untrusted input: its
//! extension headers (PAX records, GNU long names) are capped in size, the
//! bytes decompressed and the entries walked are capped, and the whole test
//! has a deadline. An archive that reaches a limit is "not verifiable", which
//! fails the check: it is never called intact.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::human_bytes;

/// The largest extension header (PAX records, a GNU long name or link) read.
pub const MAX_HEADER: u64 = 1024 * 1024;
/// The most entries walked in one archive.
pub const MAX_ENTRIES: u64 = 5_000_000;
/// Bytes decompressed per byte on disk beyond which a stream is a bomb, not a backup.
pub const MAX_RATIO: u64 = 200;
/// Bytes any file may decompress to, whatever its size on disk.
pub const MIN_BUDGET: u64 = 1 << 30;
/// How long the tests of one file may take.
pub const TIME_LIMIT: Duration = Duration::from_secs(600);

const BLOCK: usize = 512;

/// The limits of verifying one file.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_header: u64,
    pub max_entries: u64,
    /// Bytes read from the (decompressed) stream.
    pub max_bytes: u64,
    pub time: Duration,
}

impl Limits {
    /// The limits for a file of `size` bytes on disk.
    pub fn for_size(size: u64) -> Self {
        Self { max_header: MAX_HEADER, max_entries: MAX_ENTRIES, max_bytes: size.saturating_mul(MAX_RATIO).max(MIN_BUDGET), time: TIME_LIMIT }
    }
}

/// A reader that stops at the byte budget or the deadline, and remembers
/// which limit stopped it (a limit is not the stream's fault).
struct Budget<R> {
    inner: R,
    total: u64,
    max_bytes: u64,
    time: Duration,
    deadline: Instant,
    limit_hit: Option<String>,
}

impl<R: Read> Budget<R> {
    fn new(inner: R, max_bytes: u64, time: Duration) -> Self {
        Self { inner, total: 0, max_bytes, time, deadline: Instant::now() + time, limit_hit: None }
    }

    fn stop(&mut self, why: String) -> io::Error {
        self.limit_hit = Some(why.clone());
        io::Error::other(why)
    }
}

impl<R: Read> Read for Budget<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if Instant::now() >= self.deadline {
            return Err(self.stop(format!("not verified within {}", crate::duration::format(self.time))));
        }
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        if self.total > self.max_bytes {
            return Err(self.stop(format!("more than {} uncompressed", human_bytes(self.max_bytes))));
        }
        Ok(n)
    }
}

/// A tar header field: octal text, or GNU base-256 when the high bit is set.
fn number(field: &[u8]) -> Result<u64, String> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            n = n.checked_mul(256).and_then(|n| n.checked_add(u64::from(*b))).ok_or("a size beyond 64 bits")?;
        }
        return Ok(n);
    }
    let text = String::from_utf8_lossy(field);
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| format!("header field {text:?} is not a number"))
}

/// Reads a block; Ok(false) at a clean end of the stream.
fn block(r: &mut impl Read, buf: &mut [u8; BLOCK]) -> io::Result<bool> {
    let mut got = 0;
    while got < BLOCK {
        match r.read(&mut buf[got..])? {
            0 if got == 0 => return Ok(false),
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a header cut short")),
            n => got += n,
        }
    }
    Ok(true)
}

/// Skips `n` bytes of entry data and the padding to the next block.
fn skip(r: &mut impl Read, n: u64) -> io::Result<()> {
    let padded = n.div_ceil(BLOCK as u64) * BLOCK as u64;
    let copied = io::copy(&mut r.take(padded), &mut io::sink())?;
    if copied < padded {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{} of {n} bytes", copied.min(n))));
    }
    Ok(())
}

/// Reads an extension header's data (at most `max` bytes, checked before) and its padding.
fn extension(r: &mut impl Read, n: u64) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    r.take(n).read_to_end(&mut data)?;
    if (data.len() as u64) < n {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "an extension header cut short"));
    }
    let pad = n.div_ceil(BLOCK as u64) * BLOCK as u64 - n;
    if io::copy(&mut r.take(pad), &mut io::sink())? < pad {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "an extension header cut short"));
    }
    Ok(data)
}

/// The `size` record of PAX extended header data, if any (it overrides the next header's size).
fn pax_size(data: &[u8]) -> Option<u64> {
    let mut rest = data;
    while let Some(sp) = rest.iter().position(|b| *b == b' ') {
        let len: usize = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
        let record = rest.get(sp + 1..len)?;
        if let Some(v) = record.strip_prefix(b"size=") {
            return std::str::from_utf8(v).ok()?.trim_end_matches('\n').parse().ok();
        }
        rest = rest.get(len..)?;
    }
    None
}

/// Why a walk stopped: the archive is broken, or it reached a limit.
enum Walk {
    Corrupt(String),
    Limit(String),
}

impl Walk {
    fn into_message(self) -> String {
        match self {
            Walk::Corrupt(m) | Walk::Limit(m) => m,
        }
    }
}

/// Walks a tar archive through to its end-of-archive block, reading every
/// header and skipping every entry's data; returns the entries counted.
fn walk_tar(r: &mut impl Read, limits: &Limits) -> Result<u64, Walk> {
    let mut count = 0u64;
    let mut buf = [0u8; BLOCK];
    let mut next_size: Option<u64> = None;
    let failed = |count: u64, e: io::Error| Walk::Corrupt(format!("tar listing failed after {count} entries: {e}"));
    loop {
        if !block(r, &mut buf).map_err(|e| failed(count, e))? || buf.iter().all(|b| *b == 0) {
            return Ok(count);
        }
        let stored: u64 = number(&buf[148..156]).map_err(|e| failed(count, io::Error::other(e)))?;
        let sum: u64 = buf.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { u64::from(*b) }).sum();
        if sum != stored {
            return Err(failed(count, io::Error::other("archive header checksum mismatch")));
        }
        let kind = buf[156];
        let header_size = number(&buf[124..136]).map_err(|e| failed(count, io::Error::other(e)))?;
        if matches!(kind, b'x' | b'g' | b'L' | b'K') {
            if header_size > limits.max_header {
                return Err(Walk::Limit(format!("not verifiable: an extension header of {} (more than {}) after {count} entries", human_bytes(header_size), human_bytes(limits.max_header))));
            }
            let data = extension(r, header_size).map_err(|e| failed(count, e))?;
            if kind == b'x' {
                next_size = pax_size(&data);
            }
            continue;
        }
        let size = next_size.take().unwrap_or(header_size);
        // A GNU sparse entry may continue its map in extension blocks.
        if kind == b'S' && buf[482] != 0 {
            loop {
                if !block(r, &mut buf).map_err(|e| failed(count, e))? {
                    return Err(failed(count, io::Error::other("a sparse map cut short")));
                }
                if buf[504] == 0 {
                    break;
                }
            }
        }
        count += 1;
        if count > limits.max_entries {
            return Err(Walk::Limit(format!("not verifiable: more than {} entries", limits.max_entries)));
        }
        skip(r, size).map_err(|e| Walk::Corrupt(format!("tar entry {count} truncated: {e}")))?;
    }
}

/// The tests of a `.tar.gz`: one pass decompresses and walks the archive,
/// then reads the rest of the stream so the gzip trailer (CRC, length) is checked.
fn tar_gz(path: &Path, limits: &Limits) -> Vec<Result<String, String>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return vec![Err(e.to_string())],
    };
    let mut r = Budget::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)), limits.max_bytes, limits.time);
    let tar = walk_tar(&mut r, limits);
    if let Err(Walk::Limit(why)) = tar {
        return vec![Err(why)];
    }
    let rest = io::copy(&mut r, &mut io::sink());
    if let Some(why) = r.limit_hit.take() {
        return vec![Err(format!("not verifiable: {why}"))];
    }
    match (rest, tar) {
        (Err(e), _) => vec![Err(format!("gzip stream broken: {e}"))],
        (Ok(_), tar) => vec![Ok(format!("gzip stream complete ({} uncompressed)", human_bytes(r.total))), tar.map_err(Walk::into_message).and_then(entries)],
    }
}

fn entries(count: u64) -> Result<String, String> {
    if count == 0 { Err("tar archive has no entries".into()) } else { Ok(format!("tar lists {count} entries")) }
}

fn gzip(path: &Path, limits: &Limits) -> Result<String, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut r = Budget::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)), limits.max_bytes, limits.time);
    let copied = io::copy(&mut r, &mut io::sink());
    if let Some(why) = r.limit_hit.take() {
        return Err(format!("not verifiable: {why}"));
    }
    let n = copied.map_err(|e| format!("gzip stream broken: {e}"))?;
    Ok(format!("gzip stream complete ({} uncompressed)", human_bytes(n)))
}

fn tar(path: &Path, limits: &Limits) -> Result<String, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut r = Budget::new(BufReader::new(file), limits.max_bytes, limits.time);
    let walked = walk_tar(&mut r, limits);
    if let Some(why) = r.limit_hit.take() {
        return Err(format!("not verifiable: {why}"));
    }
    walked.map_err(Walk::into_message).and_then(entries)
}

fn sidecar(path: &Path, limits: &Limits) -> Option<Result<String, String>> {
    let mut side = path.as_os_str().to_owned();
    side.push(".sha256");
    let side = PathBuf::from(side);
    // A sidecar is one line; a larger one is not ours to read whole.
    let text = File::open(&side).ok().and_then(|f| {
        let mut s = String::new();
        f.take(4096).read_to_string(&mut s).ok().map(|_| s)
    })?;
    let want = text.split_whitespace().next().unwrap_or("").to_lowercase();
    let mut hasher = Sha256::new();
    let hashed = File::open(path).map_err(|e| e.to_string()).and_then(|f| {
        let mut r = Budget::new(f, u64::MAX, limits.time);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) => return Err(if r.limit_hit.is_some() { format!("not verifiable: {e}") } else { e.to_string() }),
            }
        }
    });
    Some(hashed.and_then(|_| {
        let got: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if got == want { Ok("sha256 matches its sidecar".into()) } else { Err(format!("sha256 {got} does not match the sidecar's {want}")) }
    }))
}

/// The integrity tests that apply to a file, by name; each Ok or Err with why.
pub fn verify(path: &Path, limits: &Limits) -> Vec<Result<String, String>> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let mut out = Vec::new();
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        out.extend(tar_gz(path, limits));
    } else if name.ends_with(".gz") {
        out.push(gzip(path, limits));
    } else if name.ends_with(".tar") {
        out.push(tar(path, limits));
    }
    out.extend(sidecar(path, limits));
    out
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::process::Command;

    use super::*;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap_or_default();
        e.finish().unwrap_or_default()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap_or_default();
    }

    /// A .tar.gz whose first member carries a PAX record of `record` bytes.
    fn with_pax(dir: &Path, record: usize) -> PathBuf {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("comment", vec![b'a'; record].as_slice())]).unwrap_or_default();
        file(&mut b, "db.sql", b"INSERT INTO t VALUES (1);\n");
        let path = dir.join(format!("pax-{record}.tar.gz"));
        std::fs::write(&path, gz(&b.into_inner().unwrap_or_default())).unwrap_or_default();
        path
    }

    fn limits() -> Limits {
        Limits { max_header: MAX_HEADER, max_entries: 100, max_bytes: 64 << 20, time: Duration::from_secs(60) }
    }

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_pax_record_beyond_the_cap_is_not_verifiable_and_one_within_it_is_read() {
        let d = dir();
        let huge = verify(&with_pax(d.path(), 4 << 20), &limits());
        assert_eq!(huge, vec![Err("not verifiable: an extension header of 4.0 MiB (more than 1.0 MiB) after 0 entries".to_string())]);
        let small = verify(&with_pax(d.path(), 1000), &limits());
        assert_eq!(small.iter().map(|r| r.is_ok()).collect::<Vec<_>>(), vec![true, true], "{small:?}");
        assert_eq!(small[1], Ok("tar lists 1 entries".to_string()));
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_byte_budget() {
        // 32 MiB of zeros in 32 gzip members of 1 MiB each: about 32 KiB on disk.
        let member = gz(&vec![0u8; 1 << 20]);
        let d = dir();
        let path = d.path().join("bomb.gz");
        std::fs::write(&path, member.repeat(32)).unwrap_or_default();
        let small = Limits { max_bytes: 8 << 20, ..limits() };
        assert_eq!(verify(&path, &small), vec![Err("not verifiable: more than 8.0 MiB uncompressed".to_string())]);
        assert_eq!(verify(&path, &limits()), vec![Ok("gzip stream complete (32.0 MiB uncompressed)".to_string())]);
        // The budget of a real file: 200 times its size, at least 1 GiB.
        assert_eq!((Limits::for_size(1000).max_bytes, Limits::for_size(10 << 30).max_bytes), (1 << 30, 2000 << 30));
    }

    #[test]
    fn the_deadline_and_the_entry_cap_end_a_walk() {
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..3 {
            file(&mut b, &format!("t{i}.sql"), b"x");
        }
        let d = dir();
        let path = d.path().join("db.tar");
        std::fs::write(&path, b.into_inner().unwrap_or_default()).unwrap_or_default();
        assert_eq!(verify(&path, &limits()), vec![Ok("tar lists 3 entries".to_string())]);
        assert_eq!(verify(&path, &Limits { max_entries: 2, ..limits() }), vec![Err("not verifiable: more than 2 entries".to_string())]);
        assert_eq!(verify(&path, &Limits { time: Duration::ZERO, ..limits() }), vec![Err("not verifiable: not verified within 0s".to_string())]);
    }

    #[test]
    fn archives_of_gnu_tar_walk_through_long_names_pax_and_sparse_maps() {
        let d = dir();
        let src = d.path().join("src");
        let long = src.join("a".repeat(120)).join("b".repeat(120));
        std::fs::create_dir_all(&long).unwrap_or_default();
        std::fs::write(long.join("table.sql"), "INSERT;\n".repeat(100)).unwrap_or_default();
        // A sparse file with many holes: GNU tar continues its map in extension blocks.
        let sparse = std::fs::File::create(src.join("sparse.img")).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..12u64 {
            use std::os::unix::fs::FileExt;
            sparse.write_all_at(b"data", i << 20).unwrap_or_default();
        }
        for (format, name) in [("gnu", "gnu.tar"), ("pax", "pax.tar"), ("gnu", "gnu.tar.gz")] {
            let out = d.path().join(name);
            let z = if name.ends_with(".gz") { "-z" } else { "" };
            let st = Command::new("tar").args(["-c", "-S", &format!("--format={format}")]).args([z].into_iter().filter(|a| !a.is_empty())).arg("-f").arg(&out).arg("-C").arg(&src).arg(".").status();
            assert!(st.is_ok_and(|s| s.success()), "tar {format}");
            let results = verify(&out, &limits());
            assert!(results.iter().all(Result::is_ok) && results.last() == Some(&Ok("tar lists 5 entries".to_string())), "{name}: {results:?}");
        }
    }

    #[test]
    fn truncated_and_tampered_archives_are_corrupt() {
        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, "t.sql", &[b'x'; 5000]);
        let bytes = b.into_inner().unwrap_or_default();
        let d = dir();
        let cut = d.path().join("cut.tar");
        std::fs::write(&cut, &bytes[..2048]).unwrap_or_default();
        assert_eq!(verify(&cut, &limits()), vec![Err("tar entry 1 truncated: 1536 of 5000 bytes".to_string())]);
        let mut tampered = bytes.clone();
        tampered[0] ^= 1;
        let bad = d.path().join("bad.tar");
        std::fs::write(&bad, &tampered).unwrap_or_default();
        assert_eq!(verify(&bad, &limits()), vec![Err("tar listing failed after 0 entries: archive header checksum mismatch".to_string())]);
    }
}
