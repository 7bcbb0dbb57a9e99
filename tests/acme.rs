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
