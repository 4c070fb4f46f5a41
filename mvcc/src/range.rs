//! Range reads with etcd v3.4's options (`applierV3backend.Range`): revision checks, limit,
//! `more`, `count`, `keys_only`, `count_only`, sorting and min/max mod/create filters.
//!
//! As in etcd, `count` is the number of keys in the range at the revision before the
//! mod/create filters are applied. Unknown sort orders/targets (rejected by etcd's gRPC layer
//! since v3.5) are treated as "no sorting" instead of failing.

use std::cmp::Ordering;

use proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use proto::etcdserverpb::{RangeRequest, RangeResponse};

use crate::index::{Index, KeySpan, Record};
use crate::{count_i64, header, Error};

/// The revision a read asking for `requested` uses; `current`/`compacted` are the store's.
pub(crate) fn read_revision(requested: i64, current: i64, compacted: i64) -> Result<i64, Error> {
    if requested > current {
        return Err(Error::FutureRev);
    }
    let rev = if requested <= 0 { current } else { requested };
    if rev < compacted {
        return Err(Error::Compacted);
    }
    Ok(rev)
}

/// Whether a record passes the request's mod/create revision filters (0 = no filter).
fn passes(req: &RangeRequest, r: &Record) -> bool {
    !(req.max_mod_revision != 0 && r.rev.main > req.max_mod_revision
        || req.min_mod_revision != 0 && r.rev.main < req.min_mod_revision
        || req.max_create_revision != 0 && r.create_revision > req.max_create_revision
        || req.min_create_revision != 0 && r.create_revision < req.min_create_revision)
}

/// The effective sort, if any: etcd sorts ascending when the order is NONE and the target is
/// not KEY; ascending by key is the natural order and needs no sorting.
fn sorting(req: &RangeRequest) -> Option<(SortTarget, bool)> {
    let target = SortTarget::try_from(req.sort_target).ok()?;
    let order = match SortOrder::try_from(req.sort_order).ok()? {
        SortOrder::None if target != SortTarget::Key => SortOrder::Ascend,
        o => o,
    };
    match (order, target) {
        (SortOrder::None, _) | (SortOrder::Ascend, SortTarget::Key) => None,
        (o, t) => Some((t, o == SortOrder::Descend)),
    }
}

fn compare(target: SortTarget, a: (&[u8], &Record), b: (&[u8], &Record)) -> Ordering {
    match target {
        SortTarget::Key => a.0.cmp(b.0),
        SortTarget::Version => a.1.version.cmp(&b.1.version),
        SortTarget::Create => a.1.create_revision.cmp(&b.1.create_revision),
        SortTarget::Mod => a.1.rev.main.cmp(&b.1.rev.main),
        SortTarget::Value => a.1.value().cmp(b.1.value()),
    }
}

/// Evaluates a range request against `index` whose current revision is `current`. The
/// header carries `current` (also for reads at an older revision, as etcd does).
pub(crate) fn range(
    index: &Index,
    req: &RangeRequest,
    current: i64,
    compacted: i64,
) -> Result<RangeResponse, Error> {
    if req.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    let rev = read_revision(req.revision, current, compacted)?;
    let span = KeySpan::new(&req.key, &req.range_end);
    if req.count_only {
        return Ok(RangeResponse {
            header: header(current),
            kvs: Vec::new(),
            more: false,
            count: count_i64(index.range(&span, rev).count()),
        });
    }
    let limit = usize::try_from(req.limit).ok().filter(|&l| l > 0);
    let sort = sorting(req);
    let mut count = 0usize;
    let mut more = false;
    let mut found: Vec<(&[u8], &Record)> = Vec::new();
    for entry in index.range(&span, rev) {
        count += 1;
        if !passes(req, entry.1) {
            continue;
        }
        // Without sorting the index order is final: keep only `limit` entries.
        if sort.is_none() && limit.is_some_and(|l| found.len() >= l) {
            more = true;
            continue;
        }
        found.push(entry);
    }
    if let Some((target, descend)) = sort {
        if descend {
            found.sort_by(|a, b| compare(target, *b, *a));
        } else {
            found.sort_by(|a, b| compare(target, *a, *b));
        }
        if let Some(l) = limit.filter(|&l| found.len() > l) {
            found.truncate(l);
            more = true;
        }
    }
    Ok(RangeResponse {
        header: header(current),
        kvs: found
            .into_iter()
            .map(|(k, r)| r.to_kv(k, req.keys_only))
            .collect(),
        more,
        count: count_i64(count),
    })
}
