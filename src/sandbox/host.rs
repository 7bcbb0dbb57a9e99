//! A "remote" host for the drill: a real sshd (Debian's openssh-server) on a
//! loopback port with keys of its own (key-only, a known_hosts pinning its
//! host key), and a small tmpfs to fill. The remote host is this machine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SSHD: &str = "/usr/sbin/sshd";

/// Why the sandbox host cannot be had here, if it cannot.
pub fn missing() -> Option<String> {
    if !Path::new(SSHD).exists() {
        return Some(format!("no sshd at {SSHD} (apt-get install openssh-server)"));
    }
    if !nix::unistd::geteuid().is_root() {
        return Some("mounting the small filesystem it fills needs root".into());
    }
    None
}

/// sshd on 127.0.0.1, stopped on drop.
pub struct SshHost {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Drop for SshHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An ed25519 key pair without a passphrase at `path` (and `path`.pub).
pub fn keygen(path: &Path) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    let st = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(path).stdout(Stdio::null()).status().map_err(|e| format!("ssh-keygen: {e}"))?;
    if st.success() { Ok(()) } else { Err(format!("ssh-keygen failed for {}", path.display())) }
}

impl SshHost {
    /// Keys, config and pid file under `dir`.
    pub fn start(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        keygen(&dir.join("host_key"))?;
        keygen(&dir.join("user_key"))?;
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).map_err(|e| e.to_string())?;
        let port = super::free_port()?;
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nPidFile {}\nLogLevel VERBOSE\n",
            dir.join("host_key").display(),
            dir.join("authorized_keys").display(),
            dir.join("sshd.pid").display()
        );
        std::fs::write(dir.join("sshd_config"), config).map_err(|e| e.to_string())?;
        std::fs::create_dir_all("/run/sshd").ok();
        // Its log (logins, with the key used) is `sshd.log` beside the config.
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-E")
            .arg(dir.join("sshd.log"))
            .arg("-f")
            .arg(dir.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting sshd: {e}"))?;
        let host = SshHost { child, port, dir: dir.to_path_buf() };
        super::wait_listening(port, Duration::from_secs(10)).map_err(|e| format!("sshd: {e}"))?;
        let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("known_hosts"), format!("[127.0.0.1]:{port} {host_pub}")).map_err(|e| e.to_string())?;
        Ok(host)
    }

    /// HEARTBEAT.md's `hosts:` entry for this host.
    pub fn inventory(&self, name: &str) -> String {
        format!(
            "hosts:\n  - name: {name}\n    address: 127.0.0.1\n    port: {}\n    user: root\n    key_file: {}\n    known_hosts: {}\n",
            self.port,
            self.dir.join("user_key").display(),
            self.dir.join("known_hosts").display()
        )
    }
}

/// A tmpfs of `size` (e.g. `4m`), unmounted on drop.
pub struct SmallFs {
    pub path: PathBuf,
}

impl SmallFs {
    pub fn mount(path: &Path, size: &str) -> Result<Self, String> {
        Self::mount_with(path, size, None)
    }

    /// A tmpfs of `size` with at most `inodes` files and directories (`nr_inodes`).
    pub fn mount_with(path: &Path, size: &str, inodes: Option<u32>) -> Result<Self, String> {
        std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let opts = match inodes {
            Some(n) => format!("size={size},nr_inodes={n}"),
            None => format!("size={size}"),
        };
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &opts, "tmpfs"]).arg(path).output().map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mounting a {size} tmpfs at {}: {}", path.display(), String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(SmallFs { path: path.to_path_buf() })
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}
