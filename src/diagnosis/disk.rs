//! The full-disk diagnosis: one bounded, read-only script (here, or on a
//! host over SSH: one round trip) follows the space and reports facts as
//! tagged lines; `findings` turns them into the note's steps and a plan of
//! only what the facts show can help. Paths and log lines in the facts are
//! hostile text: a newline in a file name arrives as `?`, every field reaches
//! the note redacted inside a code span, and none of them chooses a target
//! (the clean roots and units come from the workspace, never from the facts).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::actions::Action;
use crate::checks::{Context, host::sh, human_bytes};
use crate::markdown::code;
use crate::policy::Policy;

/// How long the script may run in all (each walk inside is bounded to 20 s).
pub const TIMEOUT: Duration = Duration::from_secs(120);
/// Growth is two samples this far apart.
pub const SAMPLE: Duration = Duration::from_secs(2);

/// Facts first, one tagged line each: `df`, `di`, `path`/`child` (the descent
/// by `du`), `seen` (du at the mount point), `file`, `held` (deleted and still
/// open), `grow`, `writer`, `tail`, `idir`/`iage` (inodes), `core`, `link(s)`,
/// `root`/`elsewhere` (the clean roots). Arguments: path, max_age in minutes,
/// gzip_over in KiB, sample seconds, inode percent from which files are
/// counted per directory, then the clean roots.
const SCRIPT: &str = r#"set -u
p=$1; mins=$2; kb=$3; wait=$4; ipct=$5; shift 5
tab=$(printf '\t')
B() { timeout 20 "$@"; }
z() { tr '\n\0' '?\n'; }
if [ ! -d "$p" ] || [ -L "$p" ]; then echo "$p is not a real directory" >&2; exit 2; fi
echo "now	$(date +%s)"
df -P -k -- "$p" | awk 'NR==2 {print "df\t" $2 "\t" $3 "\t" $4 "\t" $6}'
df -P -i -- "$p" | awk 'NR==2 {print "di\t" $2 "\t" $3}'
dev=$(stat -c %d -- "$p")
mnt=$(df -P -k -- "$p" | awk 'NR==2 {print $6}')
dus=$(B du -x -k -0 -- "$p" 2>/dev/null | z | sort -rn | head -n 300)
chain=$(printf '%s\n' "$dus" | awk -F '\t' -v p="$p" '
  NF >= 2 { s[$2] = $1; o[++n] = $2 }
  END {
    c = p; k = 0; print "path\t" s[c] "\t" c
    pre = (c == "/") ? "/" : c "/"
    for (i = 1; i <= n && k < 5; i++) { d = o[i]; if (d != c && index(d, pre) == 1 && index(substr(d, length(pre) + 1), "/") == 0) { print "child\t" s[d] "\t" d; k++ } }
    while (1) {
      pre = (c == "/") ? "/" : c "/"; b = ""; bs = -1
      for (i = 1; i <= n; i++) { d = o[i]; if (d != c && index(d, pre) == 1 && index(substr(d, length(pre) + 1), "/") == 0 && s[d] + 0 > bs) { b = d; bs = s[d] + 0 } }
      if (b == "" || bs * 2 < s[c] + 0) break
      print "path\t" bs "\t" b; c = b
    }
  }')
printf '%s\n' "$chain"
deep=$(printf '%s\n' "$chain" | grep "^path$tab" | tail -n 1 | cut -f3-)
[ "$mnt" = "$p" ] && printf 'seen\t%s\n' "$(printf '%s\n' "$dus" | head -n 1 | cut -f1)"
B find "$deep" -xdev -type f -printf '%k\t%T@\t%p\0' 2>/dev/null | z | sort -rn | head -n 5 | sed "s/^/file$tab/"
fds=$(B find /proc/[0-9]*/fd -maxdepth 1 -type l -printf '%h\t%f\t%l\0' 2>/dev/null | z | head -n 50000)
held=$(printf '%s\n' "$fds" | grep ' (deleted)$' | while IFS="$tab" read -r d fd link; do
  [ -n "$d" ] || continue
  f="$d/$fd"; pid=${d#/proc/}; pid=${pid%/fd}
  [ "$(stat -L -c %d -- "$f" 2>/dev/null)" = "$dev" ] || continue
  size=$(stat -L -c %s -- "$f" 2>/dev/null) || continue
  comm=$(head -c 64 "/proc/$pid/comm" 2>/dev/null | tr -d '\n\t')
  unit=$(grep -o '[^/]*\.service' "/proc/$pid/cgroup" 2>/dev/null | head -n 1)
  printf 'held\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$pid" "$fd" "${comm:--}" "${unit:--}" "${link% (deleted)}"
done | sort -t "$tab" -k2,2nr | head -n 20)
[ -n "$held" ] && printf '%s\n' "$held"
cand=$( { B find "$p" -xdev -type f -mmin -3 -printf '%s\t%p\0' 2>/dev/null | z | sort -rn | head -n 10 | cut -f2-; printf '%s\n' "$held" | head -n 5 | awk -F '\t' 'NF { print "/proc/" $3 "/fd/" $4 }'; } )
sample() { printf '%s\n' "$cand" | while IFS= read -r f; do [ -n "$f" ] && printf '%s\t%s\n' "$(stat -L -c %s -- "$f" 2>/dev/null || echo -1)" "$f"; done; }
t0=$(date +%s%N); s0=$(sample); sleep "$wait"; t1=$(date +%s%N); s1=$(sample)
grow=$( { printf '%s\n' "$s0"; echo '--'; printf '%s\n' "$s1"; } | awk -F '\t' -v ms=$(( (t1 - t0) / 1000000 )) '
  $0 == "--" { second = 1; i = 0; next }
  !second { a[++n] = $1; next }
  { i++; f = substr($0, index($0, "\t") + 1); if ($1 + 0 > a[i] + 0 && a[i] >= 0) print "grow\t" ($1 - a[i]) "\t" ms "\t" $1 "\t" f }' | sort -t "$tab" -k2,2nr | head -n 5)
[ -n "$grow" ] && printf '%s\n' "$grow"
printf '%s\n' "$grow" | cut -f5- | while IFS= read -r f; do
  [ -n "$f" ] || continue
  case "$f" in /proc/*/fd/*) pid=${f#/proc/}; pid=${pid%%/*}; printf 'writer\t%s\t%s\t%s\n' "$pid" "$(head -c 64 "/proc/$pid/comm" 2>/dev/null | tr -d '\n\t')" "$f";;
  *) printf '%s\n' "$fds" | F="$f" awk -F '\t' '{ l = substr($0, length($1) + length($2) + 3) } l == ENVIRON["F"] { print $1 }' | sort -u | head -n 3 | while IFS= read -r d; do pid=${d#/proc/}; pid=${pid%/fd}; printf 'writer\t%s\t%s\t%s\n' "$pid" "$(head -c 64 "/proc/$pid/comm" 2>/dev/null | tr -d '\n\t')" "$f"; done;;
  esac
done
top=$(printf '%s\n' "$grow" | head -n 1 | cut -f5-)
[ -n "$top" ] && tail -c 4096 -- "$top" 2>/dev/null | tail -n 5 | cut -c 1-300 | tr -d '\0' | sed "s/^/tail$tab/"
itotal=$(df -P -i -- "$p" | awk 'NR==2 {print $2 + 0}'); iused=$(df -P -i -- "$p" | awk 'NR==2 {print $3 + 0}')
if [ "$itotal" -gt 0 ] && [ $((iused * 100 / itotal)) -ge "$ipct" ]; then
  idirs=$(B find "$p" -xdev -mindepth 1 -printf '%h\0' 2>/dev/null | z | sort | uniq -c | sort -rn | head -n 5 | awk '{ n = $1; sub(/^ *[0-9]+ /, ""); print "idir\t" n "\t" $0 }')
  printf '%s\n' "$idirs"
  idir=$(printf '%s\n' "$idirs" | head -n 1 | cut -f3-)
  [ -n "$idir" ] && B find "$idir" -maxdepth 1 -type f -printf '%T@\n' 2>/dev/null | sort -n | sed -n '1p;$p' | tr '\n' '\t' | sed "s/^/iage$tab/;s/\t\$/\n/"
fi
B find "$p" -xdev -type f \( -name core -o -name 'core.[0-9]*' -o -name '*.core' \) -printf '%k\t%T@\t%p\0' 2>/dev/null | z | sort -rn | head -n 50 | while IFS="$tab" read -r size t f; do
  what=-; [ -n "$f" ] || continue
  command -v file >/dev/null 2>&1 && what=$(B file -b -- "$f" 2>/dev/null | head -c 400 | tr -d '\n\t')
  printf 'core\t%s\t%s\t%s\t%s\n' "$size" "$t" "${what:--}" "$f"
done
B find "$p" -xdev -type l -printf '%p\t%l\0' 2>/dev/null | z | awk '{ if (NR <= 5) print "link\t" $0 } END { print "links\t" NR + 0 }'
for root in "$@"; do
  if [ ! -d "$root" ] || [ -L "$root" ] || [ "$(stat -c %d -- "$root")" != "$dev" ]; then printf 'elsewhere\t%s\n' "$root"; continue; fi
  printf 'root\t%s\t%s\t%s\t%s\n' "$(old -printf '%s\n' | count | tr ' ' '\t')" "$(big -printf '%s\n' | count | tr ' ' '\t')" "$(cores -printf '%s\n' | count | tr ' ' '\t')" "$root"
done"#;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub now: f64,
    /// Bytes: size, used, available; and the mount point.
    pub size: u64,
    pub used: u64,
    pub avail: u64,
    pub mount: String,
    pub inodes: (u64, u64),
    /// The descent, path → the child holding most of it, in KiB.
    pub path: Vec<(u64, String)>,
    pub children: Vec<(u64, String)>,
    /// What du sees at the mount point, in KiB (when the path is the mount point).
    pub seen: Option<u64>,
    /// KiB, mtime, path.
    pub files: Vec<(u64, f64, String)>,
    pub held: Vec<Held>,
    /// Bytes grown, milliseconds, size now, path.
    pub grow: Vec<(u64, u64, u64, String)>,
    /// pid, command, path.
    pub writers: Vec<(u32, String, String)>,
    pub tail: Vec<String>,
    pub idirs: Vec<(u64, String)>,
    pub iage: Option<(f64, f64)>,
    /// KiB, mtime, `file` output, path.
    pub cores: Vec<(u64, f64, String, String)>,
    pub links: Vec<(String, String)>,
    pub link_count: u64,
    pub roots: Vec<Root>,
    pub elsewhere: Vec<String>,
}

/// A deleted file still held open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    pub bytes: u64,
    pub pid: u32,
    pub fd: u32,
    pub command: String,
    /// Its systemd unit, when its cgroup names one.
    pub unit: Option<String>,
    pub path: String,
}

/// What `clean_logs` would take under one clean root: (count, bytes) each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Root {
    pub old: (u64, u64),
    pub big: (u64, u64),
    pub cores: (u64, u64),
    pub path: PathBuf,
}

/// Runs the script here (`host` None) or on a host: one command, one round trip.
pub async fn look(ctx: &Context, host: Option<&str>, path: &Path, policy: &Policy, inode_percent: f64) -> Result<Facts, String> {
    let s = &policy.clean_logs;
    let p = normal(path);
    let mins = (s.max_age.as_secs() / 60).max(1).to_string();
    let kb = (s.gzip_over_bytes / 1024).max(1).to_string();
    let wait = SAMPLE.as_secs().to_string();
    let ipct = (inode_percent.clamp(0.0, 100.0) as u64).to_string();
    let roots: Vec<String> = policy.clean_roots.iter().map(|r| normal(r)).collect();
    let mut args: Vec<&str> = vec![&p, &mins, &kb, &wait, &ipct];
    args.extend(roots.iter().map(String::as_str));
    let script = format!("{}\n{SCRIPT}", crate::actions::clean_logs::SELECT_SH);
    let out = sh(ctx, host, &script, &args, TIMEOUT).await?;
    if out.code != Some(0) {
        return Err(format!(
            "the disk diagnosis of {p}{} exited {}: {}",
            host.map(|h| format!(" on {h}")).unwrap_or_default(),
            out.code.map_or("on a signal".into(), |c| c.to_string()),
            out.stderr.trim()
        ));
    }
    Ok(parse(&out.stdout))
}

fn normal(p: &Path) -> String {
    let s = p.display().to_string();
    let t = s.trim_end_matches('/');
    if t.is_empty() { "/".into() } else { t.to_string() }
}

/// Reads the script's tagged lines; a line that does not parse is skipped.
pub fn parse(text: &str) -> Facts {
    let mut f = Facts::default();
    for line in text.lines() {
        let mut it = line.splitn(2, '\t');
        let (Some(tag), Some(rest)) = (it.next(), it.next()) else { continue };
        let n = |s: &str| s.trim().parse::<u64>().ok();
        let x = |s: &str| s.trim().parse::<f64>().ok();
        // `k` numeric fields, then the rest (a path may hold tabs).
        let cols = |k: usize| -> Option<(Vec<&str>, &str)> {
            let mut parts = rest.splitn(k + 1, '\t');
            let head: Vec<&str> = parts.by_ref().take(k).collect();
            let tail = parts.next()?;
            (head.len() == k).then_some((head, tail))
        };
        match tag {
            "now" => f.now = x(rest).unwrap_or_default(),
            "df" => {
                if let Some((h, m)) = cols(3) {
                    f.size = n(h[0]).unwrap_or(0) * 1024;
                    f.used = n(h[1]).unwrap_or(0) * 1024;
                    f.avail = n(h[2]).unwrap_or(0) * 1024;
                    f.mount = m.to_string();
                }
            }
            "di" => {
                let v: Vec<u64> = rest.split('\t').filter_map(n).collect();
                if v.len() == 2 {
                    f.inodes = (v[0], v[1]);
                }
            }
            "path" | "child" | "idir" => {
                if let Some((h, p)) = cols(1)
                    && let Some(k) = n(h[0])
                {
                    let v = match tag {
                        "path" => &mut f.path,
                        "child" => &mut f.children,
                        _ => &mut f.idirs,
                    };
                    v.push((k, p.to_string()));
                }
            }
            "seen" => f.seen = n(rest),
            "file" => {
                if let Some((h, p)) = cols(2)
                    && let (Some(k), Some(t)) = (n(h[0]), x(h[1]))
                {
                    f.files.push((k, t, p.to_string()));
                }
            }
            "held" => {
                if let Some((h, p)) = cols(5)
                    && let (Some(bytes), Some(pid), Some(fd)) = (n(h[0]), n(h[1]), n(h[2]))
                {
                    let unit = Some(h[4].to_string()).filter(|u| u != "-" && crate::ssh::valid_unit(u));
                    f.held.push(Held { bytes, pid: pid as u32, fd: fd as u32, command: h[3].to_string(), unit, path: p.to_string() });
                }
            }
            "grow" => {
                if let Some((h, p)) = cols(3)
                    && let (Some(d), Some(ms), Some(now)) = (n(h[0]), n(h[1]), n(h[2]))
                {
                    f.grow.push((d, ms, now, p.to_string()));
                }
            }
            "writer" => {
                if let Some((h, p)) = cols(2)
                    && let Some(pid) = n(h[0])
                {
                    f.writers.push((pid as u32, h[1].to_string(), p.to_string()));
                }
            }
            "tail" => f.tail.push(rest.to_string()),
            "iage" => {
                let v: Vec<f64> = rest.split('\t').filter_map(x).collect();
                if let [a, b, ..] = v[..] {
                    f.iage = Some((a, b));
                }
            }
            "core" => {
                if let Some((h, p)) = cols(3)
                    && let (Some(k), Some(t)) = (n(h[0]), x(h[1]))
                {
                    f.cores.push((k, t, h[2].to_string(), p.to_string()));
                }
            }
            "link" => {
                let (a, b) = rest.split_once('\t').unwrap_or((rest, ""));
                f.links.push((a.to_string(), b.to_string()));
            }
            "links" => f.link_count = n(rest).unwrap_or(0),
            "root" => {
                if let Some((h, p)) = cols(6) {
                    let v: Vec<u64> = h.iter().map(|s| n(s).unwrap_or(0)).collect();
                    f.roots.push(Root { old: (v[0], v[1]), big: (v[2], v[3]), cores: (v[4], v[5]), path: PathBuf::from(p) });
                }
            }
            "elsewhere" => f.elsewhere.push(rest.to_string()),
            _ => {}
        }
    }
    f
}

/// Untrusted text (a path, a command, a log line) for the note: redacted, one line, in a code span.
fn q(s: &str) -> String {
    code(&crate::redact::redact(s))
}

/// How long ago, in its largest unit, rounded: `11d`, `3h`, `5m`, `20s`.
fn ago(now: f64, t: f64) -> String {
    let s = (now - t).max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", (s + 30) / 60),
        3600..86_400 => format!("{}h", (s + 1800) / 3600),
        _ => format!("{}d", (s + 43_200) / 86_400),
    }
}

/// The program a core dump came from, as `file` reads its ELF note.
pub fn program(file_output: &str) -> Option<String> {
    let grab = |key: &str| {
        let i = file_output.find(key)? + key.len();
        let rest = &file_output[i..];
        Some(rest[..rest.find('\'')?].to_string())
    };
    grab("execfn: '").or_else(|| grab("from '").and_then(|s| s.split_whitespace().next().map(str::to_string)))
}

/// What the check is held to.
pub struct Limits<'a> {
    pub host: Option<&'a str>,
    pub max_used_percent: Option<f64>,
    pub inodes_full: bool,
    /// Units of the `service` checks declared for this host: the services nightshift may restart.
    pub units: Vec<String>,
}

/// Below this share of the volume free after cleaning, the volume must grow (seed 001).
pub const MIN_FREE_PERCENT: f64 = 20.0;
/// A log growing at least this fast is an error loop, not traffic.
const LOOP_RATE: f64 = 1024.0 * 1024.0;

/// The note's steps (one sentence saying what was found and what it means,
/// then the numbers) and the plan: only what the facts show can help.
pub fn findings(f: &Facts, path: &Path, policy: &Policy, lim: &Limits) -> (Vec<String>, Vec<Action>) {
    let mut steps = Vec::new();
    let mut plan = Vec::new();
    let on = lim.host.map(|h| format!(" on {h}")).unwrap_or_default();
    let used = f.used.max(1);
    // Deleted but open: df counts it, no directory shows it.
    let held_total: u64 = f.held.iter().map(|h| h.bytes).sum();
    let gap = f.seen.map(|k| f.used.saturating_sub(k * 1024));
    let held_matters = held_total >= 1024 * 1024 && held_total * 10 >= used;
    // Growing now, fastest first.
    let rate = |g: &(u64, u64, u64, String)| g.0 as f64 * 60_000.0 / g.1.max(1) as f64;
    let writer_of = |p: &str| f.writers.iter().find(|w| w.2 == p).map(|w| (w.0, w.1.clone()));
    let held_of = |p: &str| f.held.iter().find(|h| format!("/proc/{}/fd/{}", h.pid, h.fd) == p);
    let name_of = |p: &str| held_of(p).map_or_else(|| p.to_string(), |h| format!("{} (deleted)", h.path));
    let looping = f.grow.first().filter(|g| rate(g) >= LOOP_RATE);
    let core_total: u64 = f.cores.iter().map(|c| c.0 * 1024).sum();
    let mut programs: Vec<(String, usize)> = Vec::new();
    for c in &f.cores {
        let p = program(&c.2).unwrap_or_else(|| "an unknown program".into());
        match programs.iter_mut().find(|x| x.0 == p) {
            Some(x) => x.1 += 1,
            None => programs.push((p, 1)),
        }
    }
    programs.sort_by_key(|p| std::cmp::Reverse(p.1));
    let clean_kinds = |r: &Root| r.old.1 + r.big.1 + if policy.clean_logs.core_dumps { r.cores.1 } else { 0 };
    let reclaim: u64 = f.roots.iter().map(|r| r.old.1 + r.big.1 * 9 / 10 + if policy.clean_logs.core_dumps { r.cores.1 } else { 0 }).sum();
    let deep = f.path.last().cloned();

    // The sentence: what was found and what it means.
    let sentence = if held_matters {
        let h = &f.held[0];
        format!(
            "Deleted files still held open{} take {}: `df` counts them but no directory shows them, so deleting files frees nothing — the holder ({} pid {}) must let go of them (truncate the open descriptor or restart it).",
            on,
            human_bytes(held_total),
            q(&h.command),
            h.pid
        )
    } else if lim.inodes_full
        && let Some((n, d)) = f.idirs.first()
    {
        format!("The filesystem{on} has run out of inodes, not bytes: {n} entries in {} hold most of them, so no new file can be created until they are removed.", q(d))
    } else if let Some(g) = looping {
        let who = writer_of(&g.3).map_or_else(|| "an unknown writer".to_string(), |(pid, c)| format!("{} (pid {pid})", q(&c)));
        format!(
            "{} is growing at {}/min, written by {who}: a log growing this fast is the symptom of an error loop, and the error it repeats (its last lines below) is the cause.",
            q(&name_of(&g.3)),
            human_bytes(rate(g) as u64)
        )
    } else if core_total * 10 >= used
        && let Some((p, n)) = programs.first()
    {
        format!("Core dumps take {}{on}: {} crashed and dumped {n} time(s); the crash is the problem, the dumps are what it leaves.", human_bytes(core_total), q(p))
    } else if reclaim > 0 {
        format!("Old or big logs and core dumps under the clean roots{on} hold {} that clean_logs can free.", human_bytes(reclaim))
    } else {
        let (k, d) = deep.clone().unwrap_or((0, path.display().to_string()));
        format!("The space{on} is held by {} ({}), where nothing nightshift may clean lies: a human must decide what to remove, or the volume must grow.", q(&d), human_bytes(k * 1024))
    };
    steps.push(sentence);

    // The numbers.
    if let Some(first) = f.path.first() {
        let chain: Vec<String> = f.path.iter().map(|(k, p)| format!("{} {}", q(p), human_bytes(k * 1024))).collect();
        let what = if f.path.len() > 1 { "the space, followed to the deepest directory holding most of it" } else { "the space" };
        steps.push(format!("{what}: {}", chain.join(" → ")));
        if !f.children.is_empty() {
            let kids: Vec<String> = f.children.iter().map(|(k, p)| format!("{} {}", q(p), human_bytes(k * 1024))).collect();
            steps.push(format!("largest under {}: {}", q(&first.1), kids.join(", ")));
        }
    }
    if let Some((_, d)) = &deep
        && !f.files.is_empty()
    {
        let files: Vec<String> = f.files.iter().map(|(k, t, p)| format!("{} {} (modified {} ago)", q(p), human_bytes(k * 1024), ago(f.now, *t))).collect();
        steps.push(format!("largest files under {}: {}", q(d), files.join(", ")));
    }
    if let (Some(g), Some(k)) = (gap, f.seen) {
        steps.push(format!("`df` says {} used, `du` sees {} in the directories: {} is not visible in any directory", human_bytes(f.used), human_bytes(k * 1024), human_bytes(g)));
    }
    if !f.held.is_empty() {
        let list: Vec<String> = f
            .held
            .iter()
            .take(5)
            .map(|h| {
                format!("{} {} held by {} (pid {}, fd {}{})", q(&h.path), human_bytes(h.bytes), q(&h.command), h.pid, h.fd, h.unit.as_ref().map(|u| format!(", unit {}", q(u))).unwrap_or_default())
            })
            .collect();
        steps.push(format!("deleted but still open: {}", list.join("; ")));
    }
    for g in f.grow.iter().take(3) {
        let who = writer_of(&g.3).map_or_else(|| "no process holds it open now (each write opens it)".to_string(), |(pid, c)| format!("written by {} (pid {pid})", q(&c)));
        steps.push(format!("growing now: {} grew {} in {:.1}s ({}/min; {} now), {who}", q(&name_of(&g.3)), human_bytes(g.0), g.1 as f64 / 1000.0, human_bytes(rate(g) as u64), human_bytes(g.2)));
    }
    if let Some(g) = f.grow.first()
        && !f.tail.is_empty()
    {
        let lines: Vec<String> = f.tail.iter().map(|l| q(l)).collect();
        steps.push(format!("last lines of {} (redacted): {}", q(&name_of(&g.3)), lines.join(" ⏎ ")));
    }
    if !f.idirs.is_empty() {
        let (total, iused) = f.inodes;
        let dirs: Vec<String> = f.idirs.iter().map(|(n, d)| format!("{} {n}", q(d))).collect();
        steps.push(format!("inodes: {iused} of {total} used; entries per directory: {}", dirs.join(", ")));
        if let (Some((old, new)), Some((_, d))) = (f.iage, f.idirs.first()) {
            steps.push(format!("the files of {} were modified between {} ago and {} ago", q(d), ago(f.now, old), ago(f.now, new)));
        }
    }
    if !f.cores.is_empty() {
        let by: Vec<String> = programs.iter().map(|(p, n)| format!("{} {n} time(s)", q(p))).collect();
        let latest = f.cores.iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|c| format!("; latest {} {} ago", q(&c.3), ago(f.now, c.1))).unwrap_or_default();
        steps.push(format!("{} core dump(s), {}: dumped by {}{latest}", f.cores.len(), human_bytes(core_total), by.join(", ")));
    }
    if f.link_count > 0 {
        let links: Vec<String> = f.links.iter().map(|(a, b)| format!("{} → {}", q(a), q(b))).collect();
        steps.push(format!("{} symlink(s) under the path, reported and not followed: {}", f.link_count, links.join(", ")));
    }

    // What helps: the holder lets go of its deleted files.
    let mut freed = 0u64;
    if held_matters {
        let mut pids: Vec<u32> = f.held.iter().map(|h| h.pid).collect();
        pids.dedup();
        for pid in pids {
            let Some(h) = f.held.iter().find(|h| h.pid == pid) else { continue };
            let bytes: u64 = f.held.iter().filter(|x| x.pid == pid).map(|x| x.bytes).sum();
            match h.unit.as_ref().filter(|u| lim.units.contains(u)) {
                Some(u) => {
                    plan.push(Action::RestartService { unit: u.clone(), host: lim.host.map(str::to_string) });
                    freed += bytes;
                    steps.push(format!("plan: restart {} (the declared service of pid {pid}) so it lets go of {}", q(u), human_bytes(bytes)));
                }
                None => steps.push(format!(
                    "a human must free the {} held by {} (pid {pid}): `: > /proc/{pid}/fd/{}` empties the deleted file without stopping it, or restart it — no `service` check declares its unit, so nightshift may not restart it",
                    human_bytes(bytes),
                    q(&h.command),
                    h.fd
                )),
            }
        }
    }
    // clean_logs only where the listing found something for it.
    for r in &f.roots {
        let line = format!(
            "under clean root {}: {} log file(s) older than {} days {}, {} uncompressed log(s) over {} {}, {} core dump(s) {}",
            q(&r.path.display().to_string()),
            r.old.0,
            policy.clean_logs.max_age.as_secs() / 86_400,
            human_bytes(r.old.1),
            r.big.0,
            human_bytes(policy.clean_logs.gzip_over_bytes),
            human_bytes(r.big.1),
            r.cores.0,
            human_bytes(r.cores.1)
        );
        if clean_kinds(r) > 0 || r.old.0 > 0 {
            steps.push(line);
            plan.push(Action::CleanLogs { root: r.path.clone(), host: lim.host.map(str::to_string) });
        } else {
            steps.push(format!("{line}: nothing for clean_logs there, so it is not planned"));
        }
    }
    for r in &f.elsewhere {
        steps.push(format!("clean root {} is not on this filesystem{on}", q(r)));
    }
    if f.roots.is_empty() {
        steps.push(format!("no clean root of AGENTS.md lies on this filesystem{on}: nightshift may not clean anything here"));
    }
    freed += reclaim;
    // Would that be enough? Else the volume must grow (seed 001: under 20% free, ask for expansion).
    let total = (f.used + f.avail).max(1);
    if f.size > 0 {
        let after = f.used.saturating_sub(freed);
        let pct = after as f64 * 100.0 / total as f64;
        let free_pct = 100.0 - pct;
        let over = lim.max_used_percent.is_some_and(|m| pct > m) || free_pct < MIN_FREE_PERCENT;
        let what = if freed > 0 { format!("after the steps above free about {}", human_bytes(freed)) } else { "with nothing the plan can free".to_string() };
        steps.push(format!("{what}: {} used of {} ({pct:.1}%), {free_pct:.1}% free", human_bytes(after), human_bytes(total)));
        if over && !lim.inodes_full {
            let why = match lim.max_used_percent.filter(|m| pct > *m) {
                Some(m) => format!("still above the limit of {m}%"),
                None => format!("under {MIN_FREE_PERCENT}% free"),
            };
            match &policy.resize_volume {
                Some(r) => {
                    steps.push(format!("cleaning leaves the disk {why}: the volume must grow (a request to webhook {})", q(&r.webhook)));
                    plan.push(Action::ResizeVolume { path: PathBuf::from(normal(path)), host: lim.host.map(str::to_string) });
                }
                None => steps.push(format!("cleaning leaves the disk {why}: a human must grow the volume (no `resize_volume:` in AGENTS.md names a webhook that can)")),
            }
        }
    }
    if looping.is_some() {
        steps.push("the error loop itself needs a fix nightshift cannot make (the writer's own repair, or a human): cleaning only buys time".into());
    }
    (steps, plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_cannot_forge_lines_or_targets() {
        let out =
            "now\t100\ndf\t1000\t900\t100\t/v\npath\t800\t/v\npath\t790\t/v/x\nfile\t700\t40\t/v/x/a?## Actions?- [x] rm -rf /\ntail\t## Actions password=hunter2\nroot\t0\t0\t0\t0\t0\t0\t/v/logs\n";
        let f = parse(out);
        assert_eq!(f.files.len(), 1);
        let policy = Policy { clean_roots: vec!["/v/logs".into()], ..Policy::default() };
        let (steps, plan) = findings(&f, Path::new("/v"), &policy, &Limits { host: None, max_used_percent: Some(80.0), inodes_full: false, units: Vec::new() });
        assert!(plan.iter().all(|a| !matches!(a, Action::CleanLogs { .. })), "{plan:?}");
        assert!(steps.iter().all(|s| !s.contains('\n')), "{steps:?}");
        assert!(steps[0].contains("`/v/x`") && steps[0].contains("a human must decide"), "{steps:?}");
    }

    #[test]
    fn the_program_of_a_core_is_read_from_its_note() {
        let out = "ELF 64-bit LSB core file, x86-64, version 1 (SYSV), SVR4-style, from 'python3 -c import os', real uid: 0, execfn: '/usr/bin/python3', platform: 'x86_64'";
        assert_eq!(program(out).as_deref(), Some("/usr/bin/python3"));
        assert_eq!(program("ELF 64-bit LSB core file, from 'crashy --flag'").as_deref(), Some("crashy"));
    }
}
