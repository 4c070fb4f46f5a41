use super::*;

const GOOD: &str = r#"
[cluster]
token = "etcd-cluster-1"
data_dir = "data"

[[member]]
name = "cd0"
client_url = "http://127.0.0.1:2379"
peer_url = "http://127.0.0.1:2380"

[[member]]
name = "cd1"
client_url = "http://127.0.0.1:2479"
peer_url = "http://127.0.0.1:2480"
"#;

#[test]
fn parses_and_derives_ids() {
    let p = Path::new("/etc/cluster.toml");
    let f = ClusterFile::parse(p, GOOD).expect("valid file");
    let c = f.node_config(p, "cd1").expect("known member");
    assert_eq!(c.client_addr, "127.0.0.1:2479".parse().expect("addr"));
    assert_eq!(c.data_dir, PathBuf::from("/etc/data/cd1"));
    assert_eq!(c.members.len(), 2);
    assert_ne!(c.members[0].id, c.members[1].id);
    assert_eq!(c.min_lease_ttl(), 2);
}

#[test]
fn unknown_name_names_the_members() {
    let p = Path::new("c.toml");
    let f = ClusterFile::parse(p, GOOD).expect("valid file");
    let e = f.node_config(p, "cd9").expect_err("unknown").to_string();
    assert!(
        e.contains("c.toml") && e.contains("cd9") && e.contains("cd0, cd1"),
        "{e}"
    );
}

#[test]
fn garbage_and_bad_keys_are_rejected_with_location() {
    let p = Path::new("c.toml");
    let e = ClusterFile::parse(p, "this is not toml")
        .expect_err("garbage")
        .to_string();
    assert!(e.starts_with("c.toml:"), "{e}");
    let e = ClusterFile::parse(p, &GOOD.replace("token", "tokn")).expect_err("typo");
    assert!(e.to_string().contains("tokn"), "{e}");
    let e = ClusterFile::parse(p, &GOOD.replace("http://127.0.0.1:2480", "127.0.0.1:2480"))
        .expect_err("bad url");
    assert!(e.to_string().contains("member[1].peer_url"), "{e}");
}

#[test]
fn log_cache_budget_has_defaults_and_can_be_set() {
    let p = Path::new("c.toml");
    let c = ClusterFile::parse(p, GOOD)
        .expect("valid file")
        .node_config(p, "cd0")
        .expect("known member");
    assert_eq!(c.raft.log_cache_entries, 1_024);
    assert_eq!(c.raft.log_cache_bytes, 4 * 1024 * 1024);
    assert_eq!(c.raft.proposals_in_flight, 3);
    let text = format!(
        "[raft]\nlog_cache_entries = 8192\nlog_cache_bytes = 67108864\nproposals_in_flight = 8\n{GOOD}"
    );
    let c = ClusterFile::parse(p, &text)
        .expect("valid file")
        .node_config(p, "cd0")
        .expect("known member");
    assert_eq!(
        (
            c.raft.log_cache_entries,
            c.raft.log_cache_bytes,
            c.raft.proposals_in_flight
        ),
        (8192, 64 << 20, 8)
    );
    let e = ClusterFile::parse(p, &format!("[raft]\nlog_cache = 1\n{GOOD}")).expect_err("typo");
    assert!(e.to_string().contains("log_cache"), "{e}");
}
