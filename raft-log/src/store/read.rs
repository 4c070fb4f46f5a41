//! Reads from the segment files: the cache of read-only file handles, and ranges served by
//! grouped `pread`s of contiguous records (the entries still in the cache are cloned from it).

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use openraft::RaftTypeConfig;

use super::LogStore;
use crate::error::Error;
use crate::segment::{read_records, segment_path, Slot};
use crate::state::State;

/// Maximum span of one disk read when serving a range.
const MAX_READ_SPAN: u64 = 4 * 1024 * 1024;

impl<C: RaftTypeConfig> LogStore<C>
where
    C::Entry: Clone,
{
    pub(super) fn forget_readers(&self, segs: &[u64]) -> Result<(), Error> {
        let mut readers = self.inner.shared.readers.lock()?;
        for s in segs {
            readers.remove(s);
        }
        Ok(())
    }

    fn reader(&self, seg: u64) -> Result<(Arc<File>, PathBuf), Error> {
        let path = segment_path(&self.inner.shared.dir, seg);
        let mut readers = self.inner.shared.readers.lock()?;
        if let Some(f) = readers.get(&seg) {
            return Ok((f.clone(), path));
        }
        let f = Arc::new(File::open(&path).map_err(|e| Error::io(&path, e))?);
        readers.insert(seg, f.clone());
        Ok((f, path))
    }

    /// Read `[start, end)` while holding (either side of) the state lock.
    pub(super) fn read_locked(
        &self,
        st: &State<C>,
        start: u64,
        end: u64,
    ) -> Result<Vec<C::Entry>, Error> {
        let lo = start.max(st.first_index);
        let hi = end.min(st.end_index());
        if lo >= hi {
            return Ok(Vec::new());
        }
        let cache_start = st.cache_start();
        let disk_hi = hi.min(cache_start);
        let mut out = Vec::with_capacity((hi - lo).min(65536) as usize);
        let mut i = lo;
        while i < disk_hi {
            let mut group: Vec<Slot> = Vec::new();
            let mut span = 0u64;
            while i < disk_hi {
                let Some(s) = st.slot(i) else { break };
                if let Some(prev) = group.last() {
                    let contiguous =
                        s.seg == prev.seg && s.offset == prev.offset + u64::from(prev.len);
                    if !contiguous || span + u64::from(s.len) > MAX_READ_SPAN {
                        break;
                    }
                }
                span += u64::from(s.len);
                group.push(s);
                i += 1;
            }
            let Some(first) = group.first() else {
                return Err(Error::Corrupt(format!("no index entry for {i}")));
            };
            let (file, path) = self.reader(first.seg)?;
            let first_index = i - group.len() as u64;
            out.extend(read_records::<C>(&file, &path, first_index, &group)?);
            self.inner.shared.disk_reads.fetch_add(1, Ordering::Relaxed);
        }
        for idx in lo.max(cache_start)..hi {
            if let Some(c) = st.cache.get((idx - cache_start) as usize) {
                out.push(c.entry.clone());
            }
        }
        Ok(out)
    }
}
