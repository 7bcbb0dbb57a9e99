//! Certificate renewal end to end with real components from Debian: pebble
//! (an ACME test CA), certbot, and nginx serving an openssl-made certificate
//! that expires in 3 days. nightshift renews it through the gate, reloads
//! nginx, and verifies over TLS that the new certificate is served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{Ws, free_port, make_cert, wait_listening};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Nginx(String);
impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("sh").arg("-c").arg(format!("{} -s stop", self.0)).status();
    }
}

fn have(bin: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {bin}")).stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

#[test]
fn an_expiring_certificate_is_renewed_through_acme_and_verified() {
    if !(have("pebble") && have("certbot") && have("nginx")) {
        eprintln!("SKIP: pebble, certbot and nginx are needed (.ci/run installs them from Debian)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Pebble's own HTTPS certificate, which certbot is told to trust.
    let st = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=pebble", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(d.join("pebble.key"))
        .arg("-out")
        .arg(d.join("pebble.pem"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let acme = free_port();
    std::fs::write(
        d.join("pebble.json"),
        serde_json::json!({"pebble": {"listenAddress": format!("127.0.0.1:{acme}"), "managementListenAddress": format!("127.0.0.1:{}", free_port()),
            "certificate": d.join("pebble.pem"), "privateKey": d.join("pebble.key"), "httpPort": free_port(), "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": false}})
        .to_string(),
    )
    .unwrap();
    let pebble = Command::new("pebble")
        .arg("-config")
        .arg(d.join("pebble.json"))
        .env("PEBBLE_VA_ALWAYS_VALID", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .env("PEBBLE_VA_NOSLEEP", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _pebble = Killed(pebble);
    assert!(wait_listening(&format!("127.0.0.1:{acme}"), Duration::from_secs(20)), "pebble did not start");

    // nginx serving a certificate that expires in 3 days.
    let (cert, key) = make_cert(d, 3);
    std::fs::copy(&cert, d.join("site.pem")).unwrap();
    std::fs::copy(&key, d.join("site.key")).unwrap();
    let port = free_port();
    for sub in ["tmp", "logs"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let p = |name: &str| d.join(name).display().to_string();
    std::fs::write(
        d.join("nginx.conf"),
        format!(
            "pid {pid};\nerror_log {err};\nworker_processes 1;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {t};\n  proxy_temp_path {t};\n  fastcgi_temp_path {t};\n  uwsgi_temp_path {t};\n  scgi_temp_path {t};\n  server {{\n    listen 127.0.0.1:{port} ssl;\n    server_name localhost;\n    ssl_certificate {crt};\n    ssl_certificate_key {key};\n    location / {{ return 200 \"ok\"; }}\n  }}\n}}\n",
            pid = p("nginx.pid"),
            err = p("logs/error.log"),
            t = p("tmp"),
            crt = p("site.pem"),
            key = p("site.key"),
        ),
    )
    .unwrap();
    let nginx = format!("nginx -c {} -p {}/", p("nginx.conf"), d.display());
    let st = Command::new("sh").arg("-c").arg(&nginx).status().unwrap();
    assert!(st.success(), "nginx did not start: {}", std::fs::read_to_string(d.join("logs/error.log")).unwrap_or_default());
    let _nginx = Nginx(nginx.clone());
    assert!(wait_listening(&format!("127.0.0.1:{port}"), Duration::from_secs(10)));

    let certbot = format!(
        "REQUESTS_CA_BUNDLE={ca} certbot certonly --non-interactive --agree-tos --register-unsafely-without-email --server https://127.0.0.1:{acme}/dir --standalone --http-01-address 127.0.0.1 --http-01-port {http} --config-dir {le} --work-dir {work} --logs-dir {logs} -d localhost --force-renewal --no-random-sleep-on-renew && cp -L {le}/live/localhost/fullchain.pem {site} && cp -L {le}/live/localhost/privkey.pem {sitekey}",
        ca = p("pebble.pem"),
        http = free_port(),
        le = p("le"),
        work = p("le-work"),
        logs = p("le-logs"),
        site = p("site.pem"),
        sitekey = p("site.key"),
    );
    let ws = Ws::new(
        &format!("commands:\n  renew-site: {certbot:?}\n  reload-nginx: {:?}\nrules:\n  - action: renew_cert\n    decide: auto\n", format!("{nginx} -s reload")),
        &format!("checks:\n  - name: site-cert\n    kind: tls\n    address: 127.0.0.1:{port}\n    server_name: localhost\n    renew: renew-site\n    reload: reload-nginx\n"),
    );
    assert_eq!(ws.run(&["validate"]).code, 0, "{}", ws.run(&["validate"]).stderr);
    let (code, v) = ws.json(&["heartbeat", "--execute", "--json"]);
    assert_eq!(code, 1, "{v}");
    let c = &v["checks"][0];
    assert_eq!(c["status"], "failing");
    assert!(c["evidence"]["days_left"].as_i64().unwrap() <= 3, "{c}");
    let inc = &v["incidents"][0];
    let diagnosis = inc["diagnosis"].to_string();
    assert!(diagnosis.contains("issuer:") && diagnosis.contains("expires:") && diagnosis.contains("chain served:"), "{diagnosis}");
    let a = &inc["actions"][0];
    assert_eq!((a["action"].as_str(), a["decision"].as_str(), a["result"].as_str()), (Some("renew_cert"), Some("auto"), Some("ok")), "{a}");
    assert!(a["outcome"].as_str().unwrap().contains("verified: certificate of 127.0.0.1:"), "{a}");
    assert_eq!(inc["status"], "resolved");
    // What nginx serves now comes from pebble and lasts far longer than 7 days
    // (after a reload, old workers may answer a new connection for a moment).
    let mut v = serde_json::Value::Null;
    assert!(support::eventually(Duration::from_secs(10), || {
        let (code, out) = ws.json(&["check", "--json"]);
        v = out;
        code == 0
    }), "{v}");
    let c = &v["checks"][0];
    assert!(c["evidence"]["days_left"].as_i64().unwrap() > 30, "{c}");
    assert!(c["evidence"]["issuer"].as_str().unwrap().to_lowercase().contains("pebble"), "{c}");
    assert!(Path::new(&p("le/live/localhost/fullchain.pem")).exists());
}
