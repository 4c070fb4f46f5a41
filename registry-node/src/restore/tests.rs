//! The file's framing, and a restore into three data dirs read back as a member reads them.

use super::*;
use crate::types::LogId;
use mvcc::{KeyRecord, LeaseRecord};
use prost::Message as _;

fn framed(data: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(b"met");
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&[1, 2, 3, 4]);
    out
}

fn saved(snapshot: &[u8]) -> Vec<u8> {
    let mut out = snapshot.to_vec();
    out.resize(out.len() + padding(out.len() as u64) as usize, 0);
    let sha = Sha256::digest(&out);
    out.extend_from_slice(&sha);
    out
}

#[test]
fn a_whole_file_gives_back_its_snapshot_length() {
    let snap = framed(&[0x08, 0x96, 0x01, 0x10, 0x02]);
    let file = saved(&snap);
    assert_eq!(file.len() as u64 % SECTOR, SHA_LEN as u64);
    assert_eq!(
        snapshot_len(Path::new("f"), &file).expect("whole"),
        snap.len()
    );
    assert_eq!(revision_in(&snap), Some(150));
}

#[test]
fn truncated_or_damaged_files_are_refused() {
    let file = saved(&framed(b"\x08\x05"));
    let cut = snapshot_len(Path::new("f"), &file[..file.len() - 100]);
    assert!(
        matches!(cut, Err(RestoreError::MissingHash { .. })),
        "{cut:?}"
    );
    let mut bad = file.clone();
    bad[20] ^= 1;
    let e = snapshot_len(Path::new("f"), &bad).expect_err("damaged");
    assert!(e.to_string().contains("damaged or truncated"), "{e}");
    let not_ours = saved(&[7u8; 100]);
    let e = snapshot_len(Path::new("f"), &not_ours).expect_err("foreign");
    assert!(matches!(e, RestoreError::NotOurs { .. }), "{e}");
}

#[test]
fn padding_fills_a_sector() {
    assert_eq!(padding(0), 0);
    assert_eq!(padding(1), 511);
    assert_eq!(padding(512), 0);
    assert_eq!(padding(1000), 24);
}

/// A member's snapshot file as it would be streamed: padded, then its sha256.
fn saved_from(dir: &Path, meta: &SnapshotMeta, data: &[u8]) -> PathBuf {
    let store = SnapshotStore::open(&dir.join("member")).expect("open");
    store.save(meta, data).expect("save");
    let file = std::fs::read(dir.join("member").join("snapshot")).expect("read");
    let path = dir.join("saved.db");
    std::fs::write(&path, saved(&file)).expect("write");
    path
}

#[test]
fn restores_every_member_with_the_cluster_files_membership() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kv = |key: &str, create, modified, version, lease| proto::mvccpb::KeyValue {
        key: key.into(),
        create_revision: create,
        mod_revision: modified,
        version,
        value: b"v".to_vec(),
        lease,
    };
    let record = |kv: proto::mvccpb::KeyValue| KeyRecord {
        main: kv.mod_revision,
        sub: 0,
        tombstone: false,
        kv: Some(kv),
    };
    let snapshot = mvcc::Snapshot {
        revision: 9,
        compact_revision: 2,
        keys: vec![record(kv("a", 3, 5, 2, 0)), record(kv("l", 6, 6, 1, 77))],
        leases: vec![LeaseRecord {
            id: 77,
            ttl: 600,
            remaining_ttl: 0,
        }],
        ..Default::default()
    };
    let data = snapshot.encode_to_vec();
    let old = openraft::impls::leader_id_adv::LeaderId {
        term: 4,
        node_id: 99,
    };
    let meta = SnapshotMeta {
        last_log_id: Some(LogId::new(old, 40)),
        last_membership: StoredMembership::default(),
    };
    let file = saved_from(dir.path(), &meta, &data);
    let toml = "[cluster]\ntoken = \"t\"\ndata_dir = \"data\"\n".to_owned()
        + &(0..3)
            .map(|i| {
                format!(
                    "[[member]]\nname = \"m{i}\"\nclient_url = \"http://127.0.0.1:{}\"\n\
                     peer_url = \"http://127.0.0.1:{}\"\n",
                    20_000 + i,
                    21_000 + i
                )
            })
            .collect::<String>();
    let path = dir.path().join("cluster.toml");
    let cluster = crate::ClusterFile::parse(&path, &toml).expect("cluster file");
    let configs: Vec<_> = (0..3)
        .map(|i| {
            cluster
                .node_config(&path, &format!("m{i}"))
                .expect("member")
        })
        .collect();

    let restored = restore(&file, &configs).expect("restore");
    assert_eq!(restored.len(), 3);
    let ids: std::collections::BTreeSet<_> = configs.iter().map(|c| c.id).collect();
    for (c, r) in configs.iter().zip(&restored) {
        assert_eq!((&r.name, r.revision), (&c.name, 9));
        let state = SnapshotStore::open(&c.data_dir.join("state")).expect("open");
        let (m, d) = state.load().expect("load").expect("a snapshot");
        assert_eq!(d, data, "the store as saved");
        let log_id = m.last_log_id.expect("a log id");
        assert_eq!((log_id.index, log_id.leader_id.term), (40, 0));
        assert_eq!(
            m.last_membership
                .voter_ids()
                .collect::<std::collections::BTreeSet<_>>(),
            ids
        );
        let store = mvcc::Store::decode_snapshot(mvcc_config(c), &d).expect("decodes");
        assert_eq!(store.revision(), 9);
    }
    let again = restore(&file, &configs[..1]).expect_err("not empty any more");
    assert!(matches!(again, RestoreError::NotEmpty { .. }), "{again}");
}
