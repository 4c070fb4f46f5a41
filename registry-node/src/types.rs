//! openraft type configuration: what a log entry carries, what applying it returns, and what a
//! member looks like in the Raft membership.

use std::fmt;

use prost::Message;
use proto::registrypb::InternalRequest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Raft member id; equal to the etcd member id reported to clients.
pub(crate) type NodeId = u64;

openraft::declare_raft_types!(
    /// The registry's Raft types (openraft's defaults otherwise: u64 terms, the leader id that
    /// allows one leader per term and node, as openraft 0.9 had it).
    pub(crate) TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = NodeId,
        Node = MemberNode,
);

/// A snapshot's bytes: the encoded [`mvcc::Store`].
pub(crate) type SnapshotData = Vec<u8>;

/// openraft's types for this configuration.
pub(crate) type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub(crate) type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub(crate) type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub(crate) type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub(crate) type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
pub(crate) type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotData>;

/// A member as the Raft membership records it: enough to reach it and to list it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MemberNode {
    pub(crate) name: String,
    pub(crate) peer_url: String,
    pub(crate) client_url: String,
}

impl fmt::Display for MemberNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name, self.peer_url)
    }
}

/// One log entry's command: a protobuf-encoded [`InternalRequest`], as etcd keeps
/// `InternalRaftRequest` in its log. Kept encoded so the log is compact and the state machine
/// decodes exactly the bytes that were replicated.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Command(#[serde(with = "bytes_as_seq")] pub Vec<u8>);

impl Command {
    #[cfg(test)]
    fn new(req: &InternalRequest) -> Self {
        Command(req.encode_to_vec())
    }

    pub(crate) fn decode(&self) -> Result<InternalRequest, prost::DecodeError> {
        InternalRequest::decode(self.0.as_slice())
    }

    /// Many encoded requests in one entry (see [`crate::raft::batch`]): [`BATCH_MARK`], then
    /// each request length-prefixed. Applied in order, each its own revision.
    pub(crate) fn batch(encoded: &[Vec<u8>]) -> Self {
        let len = encoded.iter().map(|r| r.len() + 10).sum::<usize>() + 1;
        let mut out = Vec::with_capacity(len);
        out.push(BATCH_MARK);
        for r in encoded {
            prost::encoding::encode_varint(r.len() as u64, &mut out);
            out.extend_from_slice(r);
        }
        Command(out)
    }

    /// The requests of this entry: one, or those of a batch.
    pub(crate) fn decode_all(&self) -> Result<Vec<InternalRequest>, prost::DecodeError> {
        let Some((&BATCH_MARK, mut rest)) = self.0.split_first() else {
            return Ok(vec![self.decode()?]);
        };
        let mut out = Vec::new();
        while !rest.is_empty() {
            out.push(InternalRequest::decode_length_delimited(&mut rest)?);
        }
        Ok(out)
    }

    pub(crate) fn is_batch(&self) -> bool {
        self.0.first() == Some(&BATCH_MARK)
    }
}

/// First byte of a batch command. An encoded protobuf message never starts with 0 (field
/// number 0 is invalid), so batches are told apart from single requests, and entries written
/// before batching existed still decode.
pub(crate) const BATCH_MARK: u8 = 0;

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "command of {} bytes", self.0.len())
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Command({} bytes)", self.0.len())
    }
}

mod bytes_as_seq {
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    /// Takes the bytes whole (Vec<u8>'s own impl would visit them one by one).
    struct BytesVisitor;

    impl<'de> serde::de::Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

/// What applying one entry produced, handed back to the proposer on the leader.
///
/// It never travels between members (a follower sends writes to the leader over the member
/// link as `Propose`, and the leader answers them from its own apply), so its serde form is
/// empty: a deserialized value is `Lost`.
#[derive(Debug, Default)]
pub(crate) enum CommandResult {
    /// Entries without a command (blank, membership).
    #[default]
    Empty,
    Applied(std::sync::Arc<mvcc::Applied>),
    Rejected(mvcc::Error),
    /// The command bytes could not be decoded (never produced by our own proposers).
    Undecodable,
    /// Placeholder for a result that crossed a serde boundary.
    Lost,
    /// One result per request of a batch entry, in order.
    Batch(Vec<CommandResult>),
}

impl Serialize for CommandResult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for CommandResult {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d)?;
        Ok(CommandResult::Lost)
    }
}

/// The Raft membership a cluster file lists: each member's id with its name and URLs (what a
/// new cluster is formed with, and what a restored one starts from).
pub(crate) fn initial_members(
    members: &[crate::config::MemberSpec],
) -> std::collections::BTreeMap<NodeId, MemberNode> {
    members
        .iter()
        .map(|m| {
            let node = MemberNode {
                name: m.name.clone(),
                peer_url: m.peer_url.clone(),
                client_url: m.client_url.clone(),
            };
            (m.id, node)
        })
        .collect()
}

/// bincode settings of the snapshot file's metadata.
pub(crate) fn codec() -> bincode::config::Configuration {
    bincode::config::standard()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trips_and_single_commands_are_not_batches() {
        use proto::etcdserverpb::PutRequest;
        use proto::registrypb::internal_request::Request as Ir;
        let put = |k: &str| InternalRequest {
            request: Some(Ir::Put(PutRequest {
                key: k.into(),
                ..Default::default()
            })),
        };
        let one = Command::new(&put("a"));
        assert!(!one.is_batch());
        assert_eq!(one.decode_all().expect("single"), vec![put("a")]);
        let empty = Command::new(&InternalRequest::default());
        assert_eq!(
            empty.decode_all().expect("empty"),
            vec![InternalRequest::default()]
        );
        let reqs = vec![put("a"), InternalRequest::default(), put("c")];
        let encoded: Vec<Vec<u8>> = reqs.iter().map(|r| r.encode_to_vec()).collect();
        let batch = Command::batch(&encoded);
        assert!(batch.is_batch());
        assert_eq!(batch.decode_all().expect("batch"), reqs);
        let mut cut = batch.0.clone();
        cut.pop();
        assert!(
            Command(cut).decode_all().is_err(),
            "a truncated batch is refused"
        );
    }

    #[test]
    fn command_round_trips_through_the_peer_codec() {
        let cmd = Command((0..=255u8).collect());
        let bytes = bincode::serde::encode_to_vec(&cmd, codec()).expect("encode");
        let (back, used): (Command, usize) =
            bincode::serde::decode_from_slice(&bytes, codec()).expect("decode");
        assert_eq!(back, cmd);
        assert_eq!(used, bytes.len());
    }
}
