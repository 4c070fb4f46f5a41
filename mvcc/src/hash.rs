//! Consistency checks over the key space: etcd's `HashKV` and `Hash` (what `etcdctl endpoint
//! hashkv` compares across members, and the periodic corruption check), and an estimate of
//! the store's size for the backend quota. Pure functions of the state, so every member that
//! applied the same entries computes the same numbers (not etcd's numbers: etcd hashes its
//! bolt pages).

use crate::index::Record;
use crate::Store;

/// Bytes one retained revision costs besides its key and value (the record, its slot in the
/// key's history); what the quota counts is an estimate, as etcd's db size is a file size.
const RECORD_OVERHEAD: u64 = 64;
/// Bytes per lease besides its attached keys.
const LEASE_OVERHEAD: u64 = 64;

fn hash_record(h: &mut crc32fast::Hasher, key: &[u8], r: &Record) {
    // As etcd hashes a revision key then the marshalled KeyValue.
    h.update(&r.rev.main.to_be_bytes());
    h.update(&r.rev.sub.to_be_bytes());
    h.update(&(key.len() as u64).to_be_bytes());
    h.update(key);
    h.update(&[u8::from(r.is_tombstone())]);
    h.update(&r.create_revision.to_be_bytes());
    h.update(&r.version.to_be_bytes());
    h.update(&r.lease.to_be_bytes());
    h.update(&(r.value().len() as u64).to_be_bytes());
    h.update(r.value());
}

impl Store {
    /// etcd's `HashKV`: a CRC-32 over every retained revision at or below `revision` (0: the
    /// current one), in key then revision order, and the compact revision it starts after.
    /// Errors as etcd: a revision compacted away, or one in the future.
    pub fn hash_kv(&self, revision: i64) -> Result<(u32, i64), crate::Error> {
        let rev = if revision <= 0 {
            self.revision
        } else {
            revision
        };
        if rev > self.revision {
            return Err(crate::Error::FutureRev);
        }
        if rev < self.compact_revision {
            return Err(crate::Error::Compacted);
        }
        let mut h = crc32fast::Hasher::new();
        // etcd starts with the bucket's name.
        h.update(b"key");
        for (key, r) in self.index.records() {
            if r.rev.main <= rev {
                hash_record(&mut h, key, r);
            }
        }
        Ok((h.finalize(), self.compact_revision))
    }

    /// etcd's `Hash`: the whole state (every retained revision and the lease table).
    pub fn hash(&self) -> u32 {
        let mut h = crc32fast::Hasher::new();
        for (key, r) in self.index.records() {
            hash_record(&mut h, key, r);
        }
        for lease in self.leases.iter() {
            h.update(&lease.id.to_be_bytes());
            h.update(&lease.ttl.to_be_bytes());
            h.update(&lease.remaining_ttl.to_be_bytes());
        }
        h.update(&self.revision.to_be_bytes());
        h.update(&self.compact_revision.to_be_bytes());
        h.finalize()
    }

    /// An estimate of the bytes the store holds: every retained revision's key and value plus
    /// a fixed overhead, and the leases. Compaction lowers it; it is what a quota compares.
    pub fn size_bytes(&self) -> u64 {
        let records: u64 = self
            .index
            .records()
            .map(|(key, r)| key.len() as u64 + r.value().len() as u64 + RECORD_OVERHEAD)
            .sum();
        let leases: u64 = self
            .leases
            .iter()
            .map(|l| LEASE_OVERHEAD + l.keys.iter().map(|k| k.len() as u64).sum::<u64>())
            .sum();
        records + leases
    }
}
