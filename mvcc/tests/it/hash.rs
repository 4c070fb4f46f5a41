//! HashKV, Hash and the size estimate: deterministic across replicas, sensitive to content,
//! bounded by revision, lowered by compaction.

use crate::common::*;
use mvcc::Error;

fn writes(s: &mut mvcc::Store) {
    put(s, "a", "1"); // 2
    put(s, "b", "2"); // 3
    put(s, "a", "3"); // 4
    del(s, "b", ""); // 5
    grant(s, 10, 7, 60).expect("grant");
    put_lease(s, "c", "4", 7).expect("put"); // 6
}

#[test]
fn replicas_that_applied_the_same_entries_hash_the_same() {
    let (mut one, mut two) = (store(), store());
    writes(&mut one);
    writes(&mut two);
    assert_eq!(one.hash_kv(0), two.hash_kv(0));
    assert_eq!(one.hash(), two.hash());
    assert_eq!(one.size_bytes(), two.size_bytes());
    for rev in 1..=6 {
        assert_eq!(one.hash_kv(rev), two.hash_kv(rev));
    }
}

#[test]
fn a_revision_hashes_the_same_after_later_writes_and_differs_from_others() {
    let mut s = store();
    writes(&mut s);
    let at4 = s.hash_kv(4).expect("hash");
    put(&mut s, "d", "5");
    assert_eq!(s.hash_kv(4).expect("hash"), at4);
    assert_ne!(s.hash_kv(5).expect("hash").0, at4.0);
    assert_ne!(s.hash_kv(0).expect("hash").0, s.hash_kv(6).expect("hash").0);
    let mut other = store();
    put(&mut other, "a", "1");
    put(&mut other, "b", "2");
    put(&mut other, "a", "x"); // 4, another value
    assert_ne!(other.hash_kv(4).expect("hash").0, at4.0);
    assert_eq!(other.hash_kv(3), store_with_two().hash_kv(3));
}

fn store_with_two() -> mvcc::Store {
    let mut s = store();
    put(&mut s, "a", "1");
    put(&mut s, "b", "2");
    s
}

#[test]
fn hash_kv_errors_and_compact_revision() {
    let mut s = store();
    writes(&mut s);
    assert_eq!(s.hash_kv(7), Err(Error::FutureRev));
    compact(&mut s, 4).expect("compact");
    assert_eq!(s.hash_kv(3), Err(Error::Compacted));
    assert_eq!(s.hash_kv(0).map(|(_, c)| c), Ok(4));
}

#[test]
fn size_grows_with_writes_and_falls_with_compaction() {
    let mut s = store();
    let empty = s.size_bytes();
    assert_eq!(empty, 0);
    for i in 0..100 {
        put(&mut s, "key", &format!("value {i}"));
    }
    let grown = s.size_bytes();
    assert!(
        grown > 100 * ("key".len() + "value 0".len()) as u64,
        "{grown}"
    );
    let now = s.revision();
    compact(&mut s, now).expect("compact");
    let compacted = s.size_bytes();
    assert!(
        compacted < grown / 50,
        "{compacted} after compaction, {grown} before"
    );
    assert!(compacted > 0);
}
