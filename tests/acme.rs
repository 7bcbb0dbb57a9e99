//! Certificate renewal end to end with real components from Debian: pebble
//! (an ACME test CA), certbot, and nginx serving an openssl-made certificate
//! that expires in 3 days. nightshift renews it through the gate, reloads
//! nginx, and verifies over TLS that the new certificate is served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use std::time::Duration;

use support::Ws;

#[test]
fn an_expiring_certificate_is_renewed_through_acme_and_verified() {
    if let Some(why) = nightshift::sandbox::acme::missing() {
        support::skip("pebble, certbot and nginx", &why);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // pebble (the ACME CA) and nginx serving a certificate that expires in 3 days: the drill's sandbox site.
    let site = nightshift::sandbox::acme::Site::start(dir.path()).unwrap();
    let port = site.port;
    let (certbot, reload) = (site.renew_command().unwrap(), site.reload_command());
    let ws = Ws::new(
        &format!("commands:\n  renew-site: {certbot:?}\n  reload-nginx: {reload:?}\nrules:\n  - action: renew_cert\n    decide: auto\n"),
        &format!(
            "checks:\n  - name: site-cert\n    kind: tls\n    address: 127.0.0.1:{port}\n    server_name: localhost\n    ca_file: {:?}\n    renew: renew-site\n    reload: reload-nginx\n",
            site.ca_file()
        ),
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
    assert!(
        support::eventually(Duration::from_secs(10), || {
            let (code, out) = ws.json(&["check", "--json"]);
            v = out;
            code == 0
        }),
        "{v}"
    );
    let c = &v["checks"][0];
    assert!(c["evidence"]["days_left"].as_i64().unwrap() > 30, "{c}");
    assert!(c["evidence"]["issuer"].as_str().unwrap().to_lowercase().contains("pebble"), "{c}");
    assert!(dir.path().join("le/live/localhost/fullchain.pem").exists());
}

/// openssl, which must succeed.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl").current_dir(dir).args(args).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// A certificate for `name` (its key beside it) issued by `ca` with `extensions`.
fn issue(dir: &std::path::Path, name: &str, subject: &str, ca: &str, extensions: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), extensions).unwrap();
    let (key, csr, pem, ext) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
    openssl(dir, &[&["req", "-new"][..], &EC, &["-nodes", "-subj", subject, "-keyout", &key, "-out", &csr]].concat());
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(dir, &["x509", "-req", "-in", &csr, "-CA", &ca_pem, "-CAkey", &ca_key, "-CAcreateserial", "-days", "90", "-extfile", &ext, "-out", &pem]);
}

/// A private PKI made as a CA makes one: root → intermediate → leaves for
/// `localhost` and for another name, and the chain files a server is given.
fn pki(dir: &std::path::Path) {
    let ca = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
    std::fs::write(dir.join("root.ext"), ca).unwrap();
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &EC,
            &[
                "-nodes",
                "-subj",
                "/CN=Test Root CA",
                "-days",
                "90",
                "-keyout",
                "root.key",
                "-out",
                "root.pem",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
    issue(dir, "intermediate", "/CN=Test Intermediate CA", "root", ca);
    let leaf = |san: &str| format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName={san}\n");
    issue(dir, "localhost", "/CN=localhost", "intermediate", &leaf("DNS:localhost"));
    issue(dir, "other", "/CN=shop.example", "intermediate", &leaf("DNS:shop.example,DNS:*.shop.example"));
    let cat = |parts: &[&str], to: &str| std::fs::write(dir.join(to), parts.iter().map(|p| std::fs::read_to_string(dir.join(p)).unwrap()).collect::<String>()).unwrap();
    cat(&["localhost.pem", "intermediate.pem"], "localhost-full.pem");
    cat(&["other.pem", "intermediate.pem"], "other-full.pem");
    openssl(dir, &[&["req", "-x509"][..], &EC, &["-nodes", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-days", "90", "-keyout", "self.key", "-out", "self.pem"]].concat());
}

#[test]
fn a_served_certificate_is_checked_as_a_client_checks_it_and_each_problem_is_its_own_class() {
    if let Some(why) = nightshift::sandbox::acme::missing() {
        support::skip("nginx and openssl", &why);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pki(d);
    let p = |f: &str| d.join(f);
    // One real nginx, one port per way of serving.
    let nginx = nightshift::sandbox::acme::Nginx::start(
        &d.join("nginx"),
        &[(p("other-full.pem"), p("other.key")), (p("localhost.pem"), p("localhost.key")), (p("localhost-full.pem"), p("localhost.key")), (p("self.pem"), p("self.key"))],
    )
    .unwrap();
    let [other, leaf_only, full, selfsigned] = [0, 1, 2, 3].map(|i| nginx.ports[i]);
    let root = p("root.pem").display().to_string();
    let named = |name: &str, port: u16, ca: bool, server_name: &str| {
        format!(
            "  - name: {name}\n    kind: tls\n    address: 127.0.0.1:{port}\n    server_name: {server_name}\n{}    renew: renew\n",
            if ca { format!("    ca_file: {root}\n") } else { String::new() }
        )
    };
    let check = |name: &str, port: u16, ca: bool| named(name, port, ca, "localhost");
    let ws = Ws::new(
        "commands:\n  renew: \"touch renewed\"\nrules:\n  - action: renew_cert\n    decide: auto\n",
        &format!(
            "checks:\n{}{}{}{}{}{}{}",
            check("wrong-name", other, true),
            check("no-intermediate", leaf_only, true),
            check("full-chain", full, true),
            check("self-signed", selfsigned, false),
            check("private-ca-untrusted", full, false),
            // A wildcard covers one label, as clients match it.
            named("wildcard", other, true, "api.shop.example"),
            named("wildcard-too-deep", other, true, "v2.api.shop.example")
        ),
    );
    assert_eq!(ws.run(&["validate"]).code, 0, "{}", ws.run(&["validate"]).stderr);
    let (code, v) = ws.json(&["check", "--json"]);
    assert_eq!(code, 1, "{v}");
    let by = |name: &str| v["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone();
    // The full chain to the declared root: healthy.
    assert_eq!(by("full-chain")["status"], "ok", "{}", by("full-chain"));
    assert_eq!(by("full-chain")["evidence"]["verified"], true);
    assert_eq!(by("wildcard")["status"], "ok", "{}", by("wildcard"));
    assert_eq!(by("wildcard-too-deep")["evidence"]["problem"], "name-mismatch", "{}", by("wildcard-too-deep"));
    for (name, problem, says) in [
        ("wrong-name", "name-mismatch", "does not cover localhost: it is for shop.example, *.shop.example"),
        ("no-intermediate", "incomplete-chain", "whose issuer CN=Test Intermediate CA is neither served nor in"),
        ("self-signed", "self-signed", "is self-signed"),
        ("private-ca-untrusted", "unknown-issuer", "its chain ends at CN=Test Root CA, which is not in the system roots"),
    ] {
        let c = by(name);
        assert_eq!((c["status"].as_str(), c["evidence"]["problem"].as_str()), (Some("failing"), Some(problem)), "{c}");
        assert!(c["summary"].as_str().unwrap().contains(says), "{name}: {c}");
    }

    // Each is its own incident class, with its meaning first and a plan that fits.
    let (_, v) = ws.json(&["heartbeat", "--execute", "--json"]);
    let inc = |check: &str| v["incidents"].as_array().unwrap().iter().find(|i| i["fingerprint"].as_str().unwrap().starts_with(&format!("{check}:"))).unwrap().clone();
    let actions = |i: &serde_json::Value| i["actions"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let first = |i: &serde_json::Value| i["diagnosis"][0].as_str().unwrap().to_string();
    let wrong = inc("wrong-name");
    assert!(wrong["fingerprint"].as_str().unwrap().contains(":cert-name-mismatch:"), "{wrong}");
    assert!(first(&wrong).contains("certificate for other names than localhost"), "{wrong}");
    assert!(wrong["diagnosis"].to_string().contains("names the certificate covers: `shop.example`, `*.shop.example`"), "{wrong}");
    assert!(actions(&wrong).is_empty(), "a renewal does not fix a wrong certificate: {wrong}");
    let chain = inc("no-intermediate");
    assert!(chain["fingerprint"].as_str().unwrap().contains(":cert-incomplete-chain:"), "{chain}");
    assert!(first(&chain).contains("fix: serve the full chain"), "{chain}");
    assert!(actions(&chain).is_empty(), "{chain}");
    let own = inc("self-signed");
    assert!(own["fingerprint"].as_str().unwrap().contains(":cert-self-signed:"), "{own}");
    assert_eq!(actions(&own), ["renew_cert"], "a CA-issued certificate replaces a self-signed one: {own}");
    let untrusted = inc("private-ca-untrusted");
    assert!(untrusted["fingerprint"].as_str().unwrap().contains(":cert-unknown-issuer:"), "{untrusted}");
    assert!(v["incidents"].as_array().unwrap().iter().all(|i| !i["fingerprint"].as_str().unwrap().starts_with("full-chain:")), "{v}");
}
