//! `patronus classify`: signature errors with file, line and field; and
//! real captures from ../shared/corpora/ndpi-dev (skipped when absent).

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

fn classify(args: &[&str]) -> (i32, String, String) {
    let out = run_with_timeout(patronus().arg("classify").args(args), Duration::from_secs(120));
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn signatures() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../conf/signatures.toml").to_string()
}

#[test]
fn bad_signatures_name_file_line_and_field() {
    let dir = Scratch::new("classify-sigs");
    let cases = [
        ("[[app]]\nname = \"X\"\ncategory = \"Vidoe\"\n", ":3:12: app[0].category: unknown category `Vidoe`"),
        ("[[app]]\nname = \"X\"\ncategory = \"Web\"\nhost = [\"x.com\"]\n", ":4:1: app[0].host: unknown field `host`"),
        (
            "[[app]]\nname = \"X\"\ncategory = \"Web\"\n[[app.pattern]]\nbytes = \"\\\\xZZ\"\n",
            ":5:9: app[0].pattern[0].bytes: `\\xZZ` is not a hex byte",
        ),
        ("[[app]]\nname = \"X\"\ncategory = \"Web\"\nports = [\"tcp:80\"]\n", ":4:10: app[0].ports[0]: `tcp:80` is not PROTO/PORT"),
        ("[[app]]\nname = \"YouTube\"\ncategory = \"Web\"\n", "app[0].name: application `YouTube` is defined twice"),
    ];
    let empty = dir.write("empty.pcap", "");
    for (i, (text, want)) in cases.iter().enumerate() {
        let f = dir.write(&format!("s{i}.toml"), text);
        let (code, out, err) = classify(&["--signatures", &signatures(), "--signatures", f.to_str().unwrap(), empty.to_str().unwrap()]);
        assert_eq!(code, 2, "case {i}: {out}{err}");
        assert!(err.contains(&format!("s{i}.toml")) && err.contains(want), "case {i}: want {want:?} in\n{err}");
    }
}

#[test]
fn a_corrupt_capture_is_an_error_not_a_panic() {
    let dir = Scratch::new("classify-bad");
    let f = dir.write("bad.pcap", "\u{d4}\u{c3}\u{b2}\u{a1}garbage");
    let (code, _, err) = classify(&["--signatures", &signatures(), f.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("bad.pcap"), "{err}");
}

#[test]
fn real_captures_classify_as_ndpi_says() {
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpora/ndpi-dev");
    if !Path::new(corpus).exists() {
        return skip("classify::real_captures_classify_as_ndpi_says", "../shared/corpora/ndpi-dev is absent");
    }
    // Flows nDPI labels by DPI, whole captures of one kind.
    for (pcap, app) in
        [("ssh.pcap", "SSH"), ("bittorrent.pcap", "BitTorrent"), ("pgsql.pcap", "PostgreSQL"), ("wireguard.pcap", "WireGuard")]
    {
        let (code, out, err) = classify(&["--signatures", &signatures(), "--format", "tsv", &format!("{corpus}/{pcap}")]);
        assert_eq!(code, 0, "{pcap}: {err}");
        let rows: Vec<Vec<&str>> = out.lines().skip(1).map(|l| l.split('\t').collect()).collect();
        assert!(!rows.is_empty(), "{pcap}: no flows");
        for r in &rows {
            assert_eq!(r[4], app, "{pcap}: {r:?}");
            assert_ne!(r[8], "port-hint", "{pcap}: {r:?}");
        }
    }
    let (_, out, _) = classify(&["--signatures", &signatures(), "--format", "json", &format!("{corpus}/443-curl.pcap")]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["flows"][0]["host"], "www.ntop.org");
    assert_eq!(v["flows"][0]["app"], "ntop");
}

/// tests/captures/lab-traffic.pcap: real clients against real servers,
/// recorded by scripts/lab-traffic.sh (curl/openssl s_server, curl/python
/// http.server, dig/dnsmasq, ssh/sshd, psql/PostgreSQL 15,
/// redis-cli/redis-server, mariadb/mariadbd, ngtcp2 QUIC, a sipp call).
/// Each flow's application and how it was decided, without root.
#[test]
fn the_projects_own_capture_classifies_flow_by_flow() {
    let pcap = format!("{}/../tests/captures/lab-traffic.pcap", env!("CARGO_MANIFEST_DIR"));
    let (code, out, err) = classify(&["--format", "tsv", &pcap]);
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    let head: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
    let got: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|r| {
            (r[col("server")].rsplit(':').next().unwrap().to_owned(), r[col("app")].into(), r[col("basis")].into(), r[col("host")].into())
        })
        .collect();
    let want = [
        ("443", "YouTube", "host", "www.youtube.com"),      // TLS SNI (openssl s_server)
        ("80", "Netflix", "host", "www.netflix.com"),       // HTTP Host
        ("53", "YouTube", "host", "www.youtube.com"),       // DNS query
        ("443", "YouTube", "dns-cache", "www.youtube.com"), // TLS to the answered address, no SNI
        ("22", "SSH", "protocol", ""),
        ("5432", "PostgreSQL", "protocol", ""),
        ("6379", "Redis", "protocol", ""),
        ("3306", "MySQL", "protocol", ""),
        ("4433", "YouTube", "host", "www.youtube.com"), // QUIC v1 Initial, decrypted
        ("5060", "SIP", "protocol", ""),
        ("6000", "RTP", "sdp", ""), // announced by the INVITE's SDP
    ];
    for (port, app, basis, host) in want {
        assert!(
            got.iter().any(|g| g.0 == port && g.1 == app && g.2 == basis && (host.is_empty() || g.3 == host)),
            "no {app} by {basis} to port {port}: {got:#?}"
        );
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
}
