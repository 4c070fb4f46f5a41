//! The member processes as `/proc` sees them: resident memory and CPU time, for the scale rows
//! that report memory per member and registry CPU. Pids come from `--pids`; without them the
//! figures are absent (null), never guessed.

use std::time::Instant;

use serde_json::{json, Value};

/// Resident set size of `pid` in KiB (`VmRSS`), if the process is there.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// User + system CPU time of `pid` in clock ticks (fields 14 and 15 of `/proc/<pid>/stat`).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second as `/proc` counts them (`CLK_TCK`, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

/// RSS of every member in MiB (null for a process that is gone), and their sum.
pub fn rss_json(pids: &[u32]) -> Value {
    let per: Vec<Option<f64>> = pids
        .iter()
        .map(|p| rss_kib(*p).map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0))
        .collect();
    let sum: f64 = per.iter().flatten().sum();
    json!({ "rss_mib": per, "rss_sum_mib": (sum * 10.0).round() / 10.0 })
}

/// Sum of the members' RSS in KiB (processes that are gone count 0).
pub fn rss_sum_kib(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|p| rss_kib(*p)).sum()
}

/// A CPU-time reading of the members, to compare with a later one.
pub struct CpuMark {
    at: Instant,
    ticks: Vec<Option<u64>>,
}

impl CpuMark {
    pub fn now(pids: &[u32]) -> Self {
        CpuMark {
            at: Instant::now(),
            ticks: pids.iter().map(|p| cpu_ticks(*p)).collect(),
        }
    }

    /// CPU used by each member since this mark, in % of one core, and the sum (`prefix` before
    /// each name). Null when no pids were given.
    pub fn since(&self, pids: &[u32], prefix: &str) -> Value {
        let wall = self.at.elapsed().as_secs_f64().max(1e-3);
        let per: Vec<Option<f64>> = pids
            .iter()
            .zip(&self.ticks)
            .map(|(p, before)| {
                let used = cpu_ticks(*p)?.checked_sub((*before)?)? as f64 / TICKS_PER_S;
                Some((used / wall * 1000.0).round() / 10.0)
            })
            .collect();
        let sum = if pids.is_empty() {
            None
        } else {
            Some((per.iter().flatten().sum::<f64>() * 10.0).round() / 10.0)
        };
        json!({
            format!("{prefix}cpu_pct"): per,
            format!("{prefix}cpu_pct_sum"): sum,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(rss_kib(me).expect("own VmRSS") > 0);
        assert!(cpu_ticks(me).is_some());
        assert_eq!(rss_kib(u32::MAX), None, "no such process");
        let j = rss_json(&[me, u32::MAX]);
        assert!(j["rss_mib"][0].as_f64().expect("own rss") > 0.0);
        assert!(j["rss_mib"][1].is_null());
    }
}
