//! Helpers shared by the integration tests: request builders and short apply wrappers.
#![allow(dead_code)]

use mvcc::{Applied, Config, Error, Response, Store};
use proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use proto::etcdserverpb::request_op::Request as Op;
use proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, LeaseGrantRequest, LeaseRevokeRequest,
    PutRequest, RangeRequest, RangeResponse, RequestOp, TxnRequest, TxnResponse,
};
use proto::mvccpb::KeyValue;
use proto::registrypb::internal_request::Request;
use proto::registrypb::{InternalRequest, LeaseRevokeBatch};

pub(crate) fn store() -> Store {
    Store::new(Config::default())
}

pub(crate) fn apply(s: &mut Store, r: Request) -> Result<Applied, Error> {
    s.apply(1, &InternalRequest { request: Some(r) })
}

pub(crate) fn put_req(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    }
}

pub(crate) fn put(s: &mut Store, k: &str, v: &str) -> Applied {
    apply(s, Request::Put(put_req(k, v))).expect("put")
}

pub(crate) fn put_lease(s: &mut Store, k: &str, v: &str, lease: i64) -> Result<Applied, Error> {
    let mut p = put_req(k, v);
    p.lease = lease;
    apply(s, Request::Put(p))
}

pub(crate) fn del_req(k: &str, end: &str) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: k.into(),
        range_end: end.into(),
        prev_kv: true,
    }
}

pub(crate) fn del(s: &mut Store, k: &str, end: &str) -> Applied {
    apply(s, Request::DeleteRange(del_req(k, end))).expect("delete")
}

pub(crate) fn rr(k: &str, end: &str) -> RangeRequest {
    RangeRequest {
        key: k.into(),
        range_end: end.into(),
        ..Default::default()
    }
}

pub(crate) fn range(s: &Store, k: &str, end: &str) -> RangeResponse {
    s.range(&rr(k, end)).expect("range")
}

pub(crate) fn get(s: &Store, k: &str) -> Option<KeyValue> {
    range(s, k, "").kvs.into_iter().next()
}

pub(crate) fn get_at(s: &Store, k: &str, rev: i64) -> Result<Option<KeyValue>, Error> {
    let mut r = rr(k, "");
    r.revision = rev;
    Ok(s.range(&r)?.kvs.into_iter().next())
}

/// Keys of a range response, as strings.
pub(crate) fn keys(r: &RangeResponse) -> Vec<String> {
    r.kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

pub(crate) fn value(kv: &KeyValue) -> String {
    String::from_utf8_lossy(&kv.value).into_owned()
}

pub(crate) fn op_put(k: &str, v: &str) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(put_req(k, v))),
    }
}

pub(crate) fn op_del(k: &str, end: &str) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestDeleteRange(del_req(k, end))),
    }
}

pub(crate) fn op_range(k: &str, end: &str) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(rr(k, end))),
    }
}

pub(crate) fn op_txn(t: TxnRequest) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestTxn(t)),
    }
}

pub(crate) fn txn_req(
    compare: Vec<Compare>,
    success: Vec<RequestOp>,
    failure: Vec<RequestOp>,
) -> TxnRequest {
    TxnRequest {
        compare,
        success,
        failure,
    }
}

pub(crate) fn txn(s: &mut Store, t: TxnRequest) -> Result<(TxnResponse, Applied), Error> {
    let a = apply(s, Request::Txn(t))?;
    match &a.response {
        Response::Txn(t) => Ok((t.clone(), a)),
        other => panic!("not a txn response: {other:?}"),
    }
}

/// A compare of `key` (and `range_end`) on `target` with `result` against `v`.
pub(crate) fn cmp(
    key: &str,
    end: &str,
    target: CompareTarget,
    result: CompareResult,
    v: TargetUnion,
) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: key.into(),
        range_end: end.into(),
        target_union: Some(v),
    }
}

pub(crate) fn version_is(key: &str, result: CompareResult, v: i64) -> Compare {
    cmp(
        key,
        "",
        CompareTarget::Version,
        result,
        TargetUnion::Version(v),
    )
}

pub(crate) fn value_is(key: &str, result: CompareResult, v: &str) -> Compare {
    cmp(
        key,
        "",
        CompareTarget::Value,
        result,
        TargetUnion::Value(v.into()),
    )
}

pub(crate) fn grant(s: &mut Store, index: u64, id: i64, ttl: i64) -> Result<(i64, i64), Error> {
    let a = s.apply(
        index,
        &InternalRequest {
            request: Some(Request::LeaseGrant(LeaseGrantRequest { ttl, id })),
        },
    )?;
    match a.response {
        Response::LeaseGrant(g) => Ok((g.id, g.ttl)),
        other => panic!("not a grant response: {other:?}"),
    }
}

pub(crate) fn revoke(s: &mut Store, id: i64) -> Result<Applied, Error> {
    apply(s, Request::LeaseRevoke(LeaseRevokeRequest { id }))
}

pub(crate) fn revoke_batch(s: &mut Store, ids: Vec<i64>) -> Applied {
    apply(s, Request::LeaseRevokeBatch(LeaseRevokeBatch { ids })).expect("batch revoke")
}

pub(crate) fn compact(s: &mut Store, revision: i64) -> Result<Applied, Error> {
    apply(
        s,
        Request::Compaction(CompactionRequest {
            revision,
            physical: false,
        }),
    )
}

/// Every answer a reader could get: full ranges at every revision from `from` to now.
pub(crate) fn all_answers(s: &Store, from: i64) -> Vec<Result<RangeResponse, Error>> {
    (from..=s.revision())
        .map(|rev| {
            let mut r = rr("\0", "\0");
            r.revision = rev;
            s.range(&r)
        })
        .collect()
}
