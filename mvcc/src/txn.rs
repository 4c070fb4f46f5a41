//! Transactions, following etcd v3.4 step by step:
//!
//! 1. [`validate`]: the gRPC layer's `checkTxnRequest` (op counts, empty keys, empty ops) and
//!    `checkIntervals` (no key put twice, no put overlapping a delete, nested txns included).
//! 2. [`evaluate`]: every compare, nested ones too, against the state *before* the txn
//!    (`compareToPath`), giving the [`Path`] of branches taken.
//! 3. [`check`]: the taken branches' puts (lease exists; key exists for `ignore_*`) and ranges
//!    (revision not future/compacted), again against the state before the txn.
//! 4. [`execute`]: the ops in order on one [`Writer`] (one revision); ranges see earlier writes.
//!
//! Deviation: a `range_end` of `"\0"` on a delete counts as "to the end" in step 1 (etcd's
//! interval check misses that overlap and would then panic applying it).

use std::collections::BTreeSet;

use proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use proto::etcdserverpb::request_op::Request;
use proto::etcdserverpb::response_op::Response;
use proto::etcdserverpb::{Compare, PutRequest, RequestOp, ResponseOp, TxnRequest, TxnResponse};

use crate::index::{Index, KeySpan, Record};
use crate::lease::LeaseTable;
use crate::range::{range, read_revision};
use crate::write::Writer;
use crate::{header, Error};

/// Step 1: request-level checks, before anything is read.
pub(crate) fn validate(req: &TxnRequest, max_ops: usize) -> Result<(), Error> {
    check_counts(req, max_ops)?;
    check_intervals(&req.success)?;
    check_intervals(&req.failure)?;
    Ok(())
}

/// etcd's `checkTxnRequest`: nested txns get the budget left by the outer one's size.
fn check_counts(req: &TxnRequest, max_ops: usize) -> Result<(), Error> {
    let opc = req
        .compare
        .len()
        .max(req.success.len())
        .max(req.failure.len());
    let budget = max_ops.checked_sub(opc).ok_or(Error::TooManyOps)?;
    if req.compare.iter().any(|c| c.key.is_empty()) {
        return Err(Error::EmptyKey);
    }
    for op in req.success.iter().chain(&req.failure) {
        let key = match &op.request {
            None => return Err(Error::KeyNotFound),
            Some(Request::RequestRange(r)) => &r.key,
            Some(Request::RequestPut(p)) => &p.key,
            Some(Request::RequestDeleteRange(d)) => &d.key,
            Some(Request::RequestTxn(t)) => {
                check_counts(t, budget)?;
                continue;
            }
        };
        if key.is_empty() {
            return Err(Error::EmptyKey);
        }
    }
    Ok(())
}

/// The puts and delete spans of one branch, nested txns included.
type Writes<'a> = (BTreeSet<&'a [u8]>, Vec<KeySpan<'a>>);

fn deletes_contain(dels: &[KeySpan<'_>], key: &[u8]) -> bool {
    dels.iter().any(|d| d.contains(key))
}

/// etcd's `checkIntervals` for one branch.
fn check_intervals(reqs: &[RequestOp]) -> Result<Writes<'_>, Error> {
    let mut dels: Vec<KeySpan<'_>> = reqs
        .iter()
        .filter_map(|op| match &op.request {
            Some(Request::RequestDeleteRange(d)) => Some(KeySpan::new(&d.key, &d.range_end)),
            _ => None,
        })
        .collect();
    let mut puts: BTreeSet<&[u8]> = BTreeSet::new();
    for op in reqs {
        let Some(Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for &k in &puts_then {
            if puts.contains(k) || deletes_contain(&dels, k) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(k);
        }
        for &k in &puts_else {
            // The same key in then and else is fine: only one of them runs.
            if puts.contains(k) && !puts_then.contains(k) || deletes_contain(&dels, k) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(k);
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in reqs {
        let Some(Request::RequestPut(p)) = &op.request else {
            continue;
        };
        let k = p.key.as_slice();
        if puts.contains(k) || deletes_contain(&dels, k) {
            return Err(Error::DuplicateKey);
        }
        puts.insert(k);
    }
    Ok((puts, dels))
}

/// Which branch each txn takes: this one's, then its taken branch's nested txns in order.
#[derive(Debug)]
pub(crate) struct Path {
    succeeded: bool,
    nested: Vec<Path>,
}

fn branch<'r>(req: &'r TxnRequest, path: &Path) -> &'r [RequestOp] {
    if path.succeeded {
        &req.success
    } else {
        &req.failure
    }
}

/// Step 2: evaluates the compares of `req` and of the nested txns it will run, at `rev`.
pub(crate) fn evaluate(index: &Index, req: &TxnRequest, rev: i64) -> Path {
    let mut path = Path {
        succeeded: req.compare.iter().all(|c| compare(index, c, rev)),
        nested: Vec::new(),
    };
    for op in branch(req, &path) {
        if let Some(Request::RequestTxn(t)) = &op.request {
            path.nested.push(evaluate(index, t, rev));
        }
    }
    path
}

/// etcd's `applyCompare`: every key of the range must satisfy the compare; no key at all
/// compares as a zero `KeyValue`, except that VALUE compares then fail.
fn compare(index: &Index, c: &Compare, rev: i64) -> bool {
    let span = KeySpan::new(&c.key, &c.range_end);
    let mut any = false;
    for (_, r) in index.range(&span, rev) {
        any = true;
        if !compare_one(c, Some(r)) {
            return false;
        }
    }
    any || (c.target != CompareTarget::Value as i32 && compare_one(c, None))
}

/// etcd's `compareKV`; a target value of the wrong kind counts as 0 / empty, an unknown
/// target compares equal, an unknown result holds.
fn compare_one(c: &Compare, r: Option<&Record>) -> bool {
    let int = |f: fn(&TargetUnion) -> Option<i64>| c.target_union.as_ref().and_then(f).unwrap_or(0);
    let ord = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Version) => r.map_or(0, |r| r.version).cmp(&int(|t| match t {
            TargetUnion::Version(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Create) => r.map_or(0, |r| r.create_revision).cmp(&int(|t| match t {
            TargetUnion::CreateRevision(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Mod) => r.map_or(0, |r| r.rev.main).cmp(&int(|t| match t {
            TargetUnion::ModRevision(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Lease) => r.map_or(0, |r| r.lease).cmp(&int(|t| match t {
            TargetUnion::Lease(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Value) => {
            let want: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            r.map_or(&[][..], |r| r.value()).cmp(want)
        }
        Err(_) => std::cmp::Ordering::Equal,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord.is_eq(),
        Ok(CompareResult::NotEqual) => ord.is_ne(),
        Ok(CompareResult::Greater) => ord.is_gt(),
        Ok(CompareResult::Less) => ord.is_lt(),
        Err(_) => true,
    }
}

/// A put's preconditions inside a txn (`checkPut`): `ignore_*` needs the key, a lease must
/// exist. Top-level puts check the lease first (see the store).
pub(crate) fn check_put(
    index: &Index,
    leases: &LeaseTable,
    p: &PutRequest,
    lease_first: bool,
) -> Result<(), Error> {
    let lease_ok = p.lease == 0 || leases.contains(p.lease);
    if lease_first && !lease_ok {
        return Err(Error::LeaseNotFound);
    }
    if (p.ignore_value || p.ignore_lease) && index.latest(&p.key).is_none() {
        return Err(Error::KeyNotFound);
    }
    if lease_ok {
        Ok(())
    } else {
        Err(Error::LeaseNotFound)
    }
}

/// Step 3: all puts of the taken branches, then all their ranges (etcd's order).
pub(crate) fn check(
    index: &Index,
    leases: &LeaseTable,
    req: &TxnRequest,
    path: &Path,
    current: i64,
    compacted: i64,
) -> Result<(), Error> {
    walk(req, path, &mut |op| match op {
        Request::RequestPut(p) => check_put(index, leases, p, false),
        _ => Ok(()),
    })?;
    walk(req, path, &mut |op| match op {
        Request::RequestRange(r) => read_revision(r.revision, current, compacted).map(|_| ()),
        _ => Ok(()),
    })
}

/// Calls `f` on every non-txn op of the taken branches, depth first.
fn walk(
    req: &TxnRequest,
    path: &Path,
    f: &mut dyn FnMut(&Request) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut nested = path.nested.iter();
    for op in branch(req, path) {
        match &op.request {
            Some(Request::RequestTxn(t)) => {
                if let Some(p) = nested.next() {
                    walk(t, p, f)?;
                }
            }
            Some(other) => f(other)?,
            None => {}
        }
    }
    Ok(())
}

/// Step 4: runs the taken branches on `w`. Headers carry the revision seen after each op.
pub(crate) fn execute(
    w: &mut Writer<'_>,
    req: &TxnRequest,
    path: &Path,
    compacted: i64,
) -> TxnResponse {
    let mut nested = path.nested.iter();
    let ops = branch(req, path);
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(Request::RequestRange(r)) => Some(Response::ResponseRange(
                range(w.index(), r, w.rev(), compacted).unwrap_or_default(),
            )),
            Some(Request::RequestPut(p)) => Some(Response::ResponsePut(w.put(p))),
            Some(Request::RequestDeleteRange(d)) => {
                Some(Response::ResponseDeleteRange(w.delete_range(d)))
            }
            Some(Request::RequestTxn(t)) => nested
                .next()
                .map(|p| Response::ResponseTxn(execute(w, t, p, compacted))),
            None => None,
        };
        responses.push(ResponseOp { response });
    }
    TxnResponse {
        header: header(w.rev()),
        succeeded: path.succeeded,
        responses,
    }
}
