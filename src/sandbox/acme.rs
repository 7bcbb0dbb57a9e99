//! A site with an expiring certificate and a real ACME CA to renew it from,
//! for the drill: pebble (Debian's ACME test CA) on loopback, nginx serving
//! an openssl-made certificate that expires in 3 days, and the certbot and
//! nginx command lines a workspace declares to renew and reload.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, wait_listening};

/// Why the site cannot be had here, if it cannot.
pub fn missing() -> Option<String> {
    let absent: Vec<&str> = ["pebble", "certbot", "nginx", "openssl"].into_iter().filter(|b| find(b).is_none()).collect();
    (!absent.is_empty()).then(|| format!("{} not installed (.ci/run installs them from Debian)", absent.join(", ")))
}

/// Where a program is: on PATH, or in the sbin directories a non-root PATH
/// often lacks (Debian installs nginx as /usr/sbin/nginx).
fn find(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")]).map(|d| d.join(bin)).find(|p| p.is_file())
}

/// A self-signed certificate and key for `cn` (and `san`), valid `days`, from the openssl CLI.
pub(super) fn self_signed(cert: &Path, key: &Path, cn: &str, san: &str, days: u32) -> Result<(), String> {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            &format!("subjectAltName={san}"),
            "-days",
            &days.to_string(),
        ])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(format!("openssl req: {}", String::from_utf8_lossy(&out.stderr).trim())) }
}

/// nginx serving each (certificate chain, key) on its own loopback port,
/// from a configuration under `dir`; stopped on drop.
pub struct Nginx {
    cmd: String,
    /// The port of each site, in the order given.
    pub ports: Vec<u16>,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("sh").arg("-c").arg(format!("{} -s stop", self.cmd)).stderr(Stdio::null()).status();
    }
}

impl Nginx {
    pub fn start(dir: &Path, sites: &[(PathBuf, PathBuf)]) -> Result<Nginx, String> {
        std::fs::create_dir_all(dir.join("tmp")).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir.join("logs")).map_err(|e| e.to_string())?;
        let p = |name: &str| dir.join(name).display().to_string();
        let mut servers = String::new();
        let mut ports = Vec::new();
        for (crt, key) in sites {
            let port = free_port()?;
            servers.push_str(&format!(
                "  server {{\n    listen 127.0.0.1:{port} ssl;\n    server_name localhost;\n    ssl_certificate {};\n    ssl_certificate_key {};\n    location / {{ return 200 \"ok\"; }}\n  }}\n",
                crt.display(),
                key.display()
            ));
            ports.push(port);
        }
        let conf = format!(
            "pid {pid};\nerror_log {err};\nworker_processes 1;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {t};\n  proxy_temp_path {t};\n  fastcgi_temp_path {t};\n  uwsgi_temp_path {t};\n  scgi_temp_path {t};\n{servers}}}\n",
            pid = p("nginx.pid"),
            err = p("logs/error.log"),
            t = p("tmp"),
        );
        std::fs::write(dir.join("nginx.conf"), conf).map_err(|e| e.to_string())?;
        let nginx_bin = find("nginx").ok_or("nginx is not installed")?;
        let cmd = format!("{} -c {} -p {}/", nginx_bin.display(), p("nginx.conf"), dir.display());
        let st = Command::new("sh").arg("-c").arg(&cmd).output().map_err(|e| format!("nginx: {e}"))?;
        if !st.status.success() {
            return Err(format!("nginx did not start: {}", std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default()));
        }
        let nginx = Nginx { cmd, ports };
        for port in &nginx.ports {
            wait_listening(*port, Duration::from_secs(10)).map_err(|e| format!("nginx: {e}"))?;
        }
        Ok(nginx)
    }

    pub fn reload_command(&self) -> String {
        format!("{} -s reload", self.cmd)
    }
}

/// pebble and nginx, stopped on drop.
pub struct Site {
    pebble: Child,
    nginx: Option<Nginx>,
    dir: PathBuf,
    /// Where nginx serves the certificate.
    pub port: u16,
    acme: u16,
}

impl Drop for Site {
    fn drop(&mut self) {
        drop(self.nginx.take());
        let _ = self.pebble.kill();
        let _ = self.pebble.wait();
    }
}

impl Site {
    pub fn start(dir: &Path) -> Result<Site, String> {
        std::fs::create_dir_all(dir.join("tmp")).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir.join("logs")).map_err(|e| e.to_string())?;
        let p = |name: &str| dir.join(name).display().to_string();
        self_signed(&dir.join("pebble.pem"), &dir.join("pebble.key"), "pebble", "DNS:localhost,IP:127.0.0.1", 2)?;
        let acme = free_port()?;
        let config = serde_json::json!({"pebble": {"listenAddress": format!("127.0.0.1:{acme}"), "managementListenAddress": format!("127.0.0.1:{}", free_port()?),
            "certificate": p("pebble.pem"), "privateKey": p("pebble.key"), "httpPort": free_port()?, "tlsPort": free_port()?,
            "ocspResponderURL": "", "externalAccountBindingRequired": false}});
        std::fs::write(dir.join("pebble.json"), config.to_string()).map_err(|e| e.to_string())?;
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .env("PEBBLE_VA_ALWAYS_VALID", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_VA_NOSLEEP", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting pebble: {e}"))?;
        self_signed(&dir.join("site.pem"), &dir.join("site.key"), "localhost", "DNS:localhost", 3)?;
        // What the site's clients trust: the placeholder certificate itself, then pebble's issuer (renew_command adds it).
        std::fs::copy(dir.join("site.pem"), dir.join("ca.pem")).map_err(|e| e.to_string())?;
        let mut site = Site { pebble, nginx: None, dir: dir.to_path_buf(), port: 0, acme };
        wait_listening(acme, Duration::from_secs(20)).map_err(|e| format!("pebble: {e}"))?;
        let nginx = Nginx::start(dir, &[(dir.join("site.pem"), dir.join("site.key"))])?;
        site.port = nginx.ports.first().copied().unwrap_or_default();
        site.nginx = Some(nginx);
        Ok(site)
    }

    /// The trust store of the site's clients (a tls check's `ca_file`): the
    /// certificate nginx serves first, and once renewed, pebble's issuer.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// certbot against pebble, then the new certificate and key in place (and pebble's issuer trusted).
    pub fn renew_command(&self) -> Result<String, String> {
        let p = |name: &str| self.dir.join(name).display().to_string();
        Ok(format!(
            "REQUESTS_CA_BUNDLE={ca} certbot certonly --non-interactive --agree-tos --register-unsafely-without-email --server https://127.0.0.1:{acme}/dir --standalone --http-01-address 127.0.0.1 --http-01-port {http} --config-dir {le} --work-dir {work} --logs-dir {logs} -d localhost --force-renewal --no-random-sleep-on-renew && cp -L {le}/live/localhost/fullchain.pem {site} && cp -L {le}/live/localhost/privkey.pem {sitekey} && cat {le}/live/localhost/chain.pem >> {trust}",
            ca = p("pebble.pem"),
            acme = self.acme,
            http = free_port()?,
            le = p("le"),
            work = p("le-work"),
            logs = p("le-logs"),
            site = p("site.pem"),
            sitekey = p("site.key"),
            trust = p("ca.pem"),
        ))
    }

    pub fn reload_command(&self) -> String {
        self.nginx.as_ref().map(Nginx::reload_command).unwrap_or_default()
    }
}
