//! Persistence support: a full [`Snapshot`] (a prost message, so it encodes to bytes without
//! serde) and the incremental [`Change`]s each apply reports, shaped like etcd's bolt buckets:
//! key records by revision (`(main, sub)` → `KeyValue` + tombstone flag) and lease records by
//! id (`id` → ttl, remaining ttl). Lease key sets are not stored: they are rebuilt from the
//! live keys' `lease` fields, as etcd does on restore.

use prost::encoding::{self, WireType};
use prost::Message;
use proto::mvccpb::KeyValue;

use crate::index::{Index, Record, Revision};
use crate::lease::{Lease, LeaseTable};
use crate::{Config, Store};

/// Everything needed to rebuild a [`Store`].
#[derive(Clone, PartialEq, Message)]
pub struct Snapshot {
    /// Current store revision.
    #[prost(int64, tag = "1")]
    pub revision: i64,
    /// Compacted revision (0 = never).
    #[prost(int64, tag = "2")]
    pub compact_revision: i64,
    /// Every retained key revision, in any order.
    #[prost(message, repeated, tag = "3")]
    pub keys: Vec<KeyRecord>,
    /// Every lease.
    #[prost(message, repeated, tag = "4")]
    pub leases: Vec<LeaseRecord>,
    /// Raised alarms.
    #[prost(message, repeated, tag = "5")]
    pub alarms: Vec<proto::etcdserverpb::AlarmMember>,
    /// Users, roles and tokens; absent in snapshots written before auth existed.
    #[prost(message, optional, tag = "6")]
    pub auth: Option<crate::AuthSnapshot>,
}

/// One revision of one key (etcd's bolt "key" bucket entry).
#[derive(Clone, PartialEq, Message)]
pub struct KeyRecord {
    #[prost(int64, tag = "1")]
    pub main: i64,
    #[prost(int64, tag = "2")]
    pub sub: i64,
    /// A delete; `kv` then holds only the key and `mod_revision`.
    #[prost(bool, tag = "3")]
    pub tombstone: bool,
    #[prost(message, optional, tag = "4")]
    pub kv: Option<KeyValue>,
}

/// One lease (etcd's bolt "lease" bucket entry).
#[derive(Clone, Copy, PartialEq, Eq, Message)]
pub struct LeaseRecord {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

/// One record to write to (or remove from) a persistent copy of the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Insert the key record stored under [`KeyRecord::storage_key`].
    PutKey(KeyRecord),
    /// Remove the key record of this revision (compaction).
    RemoveKey(Revision),
    /// Insert or overwrite the lease record stored under [`LeaseRecord::storage_key`].
    PutLease(LeaseRecord),
    /// Remove the lease record of this id.
    RemoveLease(i64),
}

/// 16 bytes that sort like the revision: big-endian `main` then `sub`.
pub fn revision_key(rev: Revision) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&rev.main.to_be_bytes());
    out[8..].copy_from_slice(&rev.sub.to_be_bytes());
    out
}

impl KeyRecord {
    pub(crate) fn new(key: &[u8], r: &Record) -> Self {
        KeyRecord {
            main: r.rev.main,
            sub: r.rev.sub,
            tombstone: r.is_tombstone(),
            kv: Some(r.to_kv(key, false)),
        }
    }

    pub fn revision(&self) -> Revision {
        Revision {
            main: self.main,
            sub: self.sub,
        }
    }

    /// The record's key in a revision-ordered persistent tree.
    pub fn storage_key(&self) -> [u8; 16] {
        revision_key(self.revision())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        Self::decode(bytes)
    }

    fn into_record(self) -> Option<(Vec<u8>, Record)> {
        let rev = self.revision();
        let kv = self.kv?;
        let record = if self.tombstone {
            Record::tombstone(rev)
        } else {
            Record::put(
                rev,
                kv.create_revision,
                kv.version,
                kv.lease,
                kv.value.into_boxed_slice(),
            )
        };
        Some((kv.key, record))
    }
}

impl LeaseRecord {
    pub(crate) fn new(l: &Lease) -> Self {
        LeaseRecord {
            id: l.id,
            ttl: l.ttl,
            remaining_ttl: l.remaining_ttl,
        }
    }

    /// The record's key in a persistent tree: the id, big-endian.
    pub fn storage_key(&self) -> [u8; 8] {
        self.id.to_be_bytes()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        Self::decode(bytes)
    }
}

impl Store {
    /// The whole state as a [`Snapshot`].
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            revision: self.revision,
            compact_revision: self.compact_revision,
            keys: self
                .index
                .records()
                .map(|(k, r)| KeyRecord::new(k, r))
                .collect(),
            leases: self.leases.iter().map(LeaseRecord::new).collect(),
            alarms: self.alarm_list(),
            auth: Some(self.auth.to_snapshot()),
        }
    }

    /// Rebuilds a store from a snapshot (or from records gathered from a persistent copy).
    /// Tolerates inconsistent input without panicking: records without a `kv` are skipped, the
    /// revision is raised to the highest record/compact revision, keys naming a missing lease
    /// stay unattached.
    pub fn from_snapshot(config: Config, snap: Snapshot) -> Self {
        let mut store = Store::restore(
            config,
            snap.revision,
            snap.compact_revision,
            snap.keys,
            snap.leases,
        );
        store.alarms = snap.alarms.iter().map(|a| (a.member_id, a.alarm)).collect();
        store.auth = snap
            .auth
            .map(crate::Auth::from_snapshot)
            .unwrap_or_default();
        store
    }

    /// Rebuilds a store from persisted records (what the [`Change`]s of every apply wrote)
    /// plus the two meta values `revision` and `compact_revision`.
    pub fn restore(
        config: Config,
        revision: i64,
        compact_revision: i64,
        keys: impl IntoIterator<Item = KeyRecord>,
        leases: impl IntoIterator<Item = LeaseRecord>,
    ) -> Self {
        let index = Index::from_records(keys.into_iter().filter_map(KeyRecord::into_record));
        let mut table = LeaseTable::default();
        for l in leases {
            table.insert(Lease {
                id: l.id,
                ttl: l.ttl,
                remaining_ttl: l.remaining_ttl,
                keys: Default::default(),
            });
        }
        let mut max_main = 1;
        for (key, r) in index.records() {
            max_main = max_main.max(r.rev.main);
            if index.latest(key).is_some_and(|l| l.rev == r.rev) && r.lease != 0 {
                table.attach(r.lease, key);
            }
        }
        let compact_revision = compact_revision.max(0);
        Store {
            config,
            index,
            leases: table,
            revision: revision.max(max_main).max(compact_revision),
            compact_revision,
            track_changes: true,
            alarms: Default::default(),
            auth: Default::default(),
        }
    }

    /// The snapshot encoded as bytes: the same bytes as `self.snapshot().encode_to_vec()`,
    /// but written straight from the index into one buffer of the exact size, without the
    /// intermediate [`Snapshot`] (which would copy every key and value of the history once
    /// more, doubling the store's memory while a snapshot is built).
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let records = || self.index.records().map(|(key, r)| RecordRef { key, r });
        let leases = || self.leases.iter().map(LeaseRecord::new);
        let alarms = self.alarm_list();
        let auth = self.auth.to_snapshot();
        let len = int64::encoded_len_nonzero(1, self.revision)
            + int64::encoded_len_nonzero(2, self.compact_revision)
            + records()
                .map(|r| delimited_len(KEYS_TAG, r.encoded_len()))
                .sum::<usize>()
            + leases()
                .map(|l| encoding::message::encoded_len(LEASES_TAG, &l))
                .sum::<usize>()
            + encoding::message::encoded_len_repeated(ALARMS_TAG, &alarms)
            + encoding::message::encoded_len(AUTH_TAG, &auth);
        let mut buf = Vec::with_capacity(len);
        int64::encode_nonzero(1, self.revision, &mut buf);
        int64::encode_nonzero(2, self.compact_revision, &mut buf);
        for r in records() {
            encoding::encode_key(KEYS_TAG, WireType::LengthDelimited, &mut buf);
            encoding::encode_varint(r.encoded_len() as u64, &mut buf);
            r.encode(&mut buf);
        }
        for l in leases() {
            encoding::message::encode(LEASES_TAG, &l, &mut buf);
        }
        encoding::message::encode_repeated(ALARMS_TAG, &alarms, &mut buf);
        encoding::message::encode(AUTH_TAG, &auth, &mut buf);
        debug_assert_eq!(buf.len(), len);
        buf
    }

    /// A store from [`Store::encode_snapshot`]'s bytes.
    pub fn decode_snapshot(config: Config, bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        Ok(Store::from_snapshot(config, Snapshot::decode(bytes)?))
    }
}

/// Field numbers of [`Snapshot`]'s repeated fields.
const KEYS_TAG: u32 = 3;
const LEASES_TAG: u32 = 4;
const ALARMS_TAG: u32 = 5;
const AUTH_TAG: u32 = 6;

/// Length of a length-delimited field of `tag` whose body is `body` bytes long.
fn delimited_len(tag: u32, body: usize) -> usize {
    encoding::key_len(tag) + encoding::encoded_len_varint(body as u64) + body
}

/// prost's proto3 scalars: a field holding the default value is not written.
mod int64 {
    use prost::encoding;

    pub(super) fn encoded_len_nonzero(tag: u32, v: i64) -> usize {
        if v == 0 {
            0
        } else {
            encoding::int64::encoded_len(tag, &v)
        }
    }

    pub(super) fn encode_nonzero(tag: u32, v: i64, buf: &mut Vec<u8>) {
        if v != 0 {
            encoding::int64::encode(tag, &v, buf);
        }
    }
}

fn bytes_len(tag: u32, b: &[u8]) -> usize {
    if b.is_empty() {
        0
    } else {
        delimited_len(tag, b.len())
    }
}

fn encode_bytes(tag: u32, b: &[u8], buf: &mut Vec<u8>) {
    if !b.is_empty() {
        encoding::encode_key(tag, WireType::LengthDelimited, buf);
        encoding::encode_varint(b.len() as u64, buf);
        buf.extend_from_slice(b);
    }
}

/// A [`KeyRecord`] borrowed from the index, encoded without copying its key or value.
struct RecordRef<'a> {
    key: &'a [u8],
    r: &'a Record,
}

impl RecordRef<'_> {
    /// [`KeyValue`] of the record, field by field (what [`Record::to_kv`] would build).
    fn kv_len(&self) -> usize {
        let r = self.r;
        bytes_len(1, self.key)
            + int64::encoded_len_nonzero(2, r.create_revision)
            + int64::encoded_len_nonzero(3, r.rev.main)
            + int64::encoded_len_nonzero(4, r.version)
            + bytes_len(5, r.value())
            + int64::encoded_len_nonzero(6, r.lease)
    }

    /// Length of the [`KeyRecord`] message body.
    fn encoded_len(&self) -> usize {
        let r = self.r;
        int64::encoded_len_nonzero(1, r.rev.main)
            + int64::encoded_len_nonzero(2, r.rev.sub)
            + if r.is_tombstone() {
                encoding::bool::encoded_len(3, &true)
            } else {
                0
            }
            + delimited_len(4, self.kv_len())
    }

    fn encode(&self, buf: &mut Vec<u8>) {
        let r = self.r;
        int64::encode_nonzero(1, r.rev.main, buf);
        int64::encode_nonzero(2, r.rev.sub, buf);
        if r.is_tombstone() {
            encoding::bool::encode(3, &true, buf);
        }
        encoding::encode_key(4, WireType::LengthDelimited, buf);
        encoding::encode_varint(self.kv_len() as u64, buf);
        encode_bytes(1, self.key, buf);
        int64::encode_nonzero(2, r.create_revision, buf);
        int64::encode_nonzero(3, r.rev.main, buf);
        int64::encode_nonzero(4, r.version, buf);
        encode_bytes(5, r.value(), buf);
        int64::encode_nonzero(6, r.lease, buf);
    }
}
