//! The soak's verdict and `bench/soak.md`'s table, from the result lines of both sides
//! (`bench soak-report --input results.jsonl`, one JSON line per side as `bench soak` printed
//! it, with `side` and `load` added by the script).
//!
//! The verdict: the run is cut in thirds by sample; memory is flat once compaction runs when
//! a compaction (to a revision above 1) had run by the start of the second third and the members' summed RSS grew by
//! at most [`FLAT_PCT`] from the second third's mean to the last third's. (The first third
//! holds the warm-up: history builds until the first compaction, allocators grow their pools.)

use serde_json::Value;

use super::sample::Sample;

/// Most growth (in %) of the mean summed RSS from the second third to the last that still
/// counts as flat: allocator noise on a shared machine, not a leak.
pub const FLAT_PCT: f64 = 10.0;

/// Most rows in the table (samples are thinned evenly past it; the last is always shown).
const MAX_ROWS: usize = 24;

#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// The result lines (JSONL), one per side.
    #[arg(long)]
    pub input: std::path::PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub flat: bool,
    pub text: String,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn clock(sim_s: f64) -> String {
    let m = (sim_s / 60.0).round() as u64;
    format!("{}:{:02}", m / 60, m % 60)
}

/// The verdict over one side's samples (in time order).
pub fn verdict(samples: &[Sample]) -> Verdict {
    let rss: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| Some((s.t, s.rss_sum()?)))
        .collect();
    let n = rss.len();
    if n < 6 {
        return Verdict {
            flat: false,
            text: format!("no verdict: {n} samples with every member's memory (6 needed)"),
        };
    }
    let (a, b) = (n / 3, 2 * n / 3);
    let thirds: Vec<f64> = rss.iter().map(|x| x.1).collect();
    let (m2, m3) = (mean(&thirds[a..b]), mean(&thirds[b..]));
    let growth = (m3 - m2) / m2.max(1e-9) * 100.0;
    let second_starts = rss[a].0;
    // A compaction that dropped history: etcd answers -1 before its first and may compact to
    // revision 1 (nothing to drop) at its first tick; ours answers 0.
    let first = samples.iter().find(|s| s.compact_revision > 1);
    let figures = format!(
        "summed RSS of the members: mean {m2:.1} MiB over the second third, {m3:.1} MiB over the last ({growth:+.1} %)"
    );
    let Some(first) = first else {
        return Verdict {
            flat: false,
            text: format!("no verdict: compaction never ran; {figures}"),
        };
    };
    let when = format!(
        "first compaction seen at {:.0} s (seed time {})",
        first.t,
        clock(first.sim_s)
    );
    if first.t > second_starts {
        return Verdict {
            flat: false,
            text: format!(
                "no verdict: compaction had not run when the second third began ({second_starts:.0} s); {when}; {figures}"
            ),
        };
    }
    if growth <= FLAT_PCT {
        Verdict {
            flat: true,
            text: format!("memory flat once compaction runs: {figures}; {when}"),
        }
    } else {
        Verdict {
            flat: false,
            text: format!("memory NOT flat (more than {FLAT_PCT} % growth): {figures}; {when}"),
        }
    }
}

fn side_name(line: &Value) -> String {
    ["side", "label"]
        .iter()
        .find_map(|k| line[*k].as_str().filter(|s| !s.is_empty()))
        .unwrap_or("?")
        .to_owned()
}

fn samples_of(line: &Value) -> anyhow::Result<Vec<Sample>> {
    Ok(serde_json::from_value(line["samples"].clone())?)
}

fn opt(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{x:.1}"))
}

fn cells(s: Option<&Sample>) -> String {
    let Some(s) = s else {
        return " | | | ".into();
    };
    let rss: Vec<String> = s.rss_mib.iter().map(|r| opt(*r)).collect();
    format!(
        " {} | {} | {} | {} ",
        s.revision,
        s.compact_revision,
        rss.join(" / "),
        opt(s.db_in_use_mib)
    )
}

/// Which sample indexes get a row: evenly thinned to [`MAX_ROWS`], the last always in.
fn rows(n: usize) -> Vec<usize> {
    if n <= MAX_ROWS {
        return (0..n).collect();
    }
    let step = n.div_ceil(MAX_ROWS - 1);
    let mut v: Vec<usize> = (0..n).step_by(step).collect();
    if v.last() != Some(&(n - 1)) {
        v.push(n - 1);
    }
    v
}

/// The Markdown for `bench/soak.md`: the table, then per side the churn's counts and the
/// verdict.
pub fn render(lines: &[Value]) -> anyhow::Result<String> {
    anyhow::ensure!(!lines.is_empty(), "no result lines");
    let mut sides = Vec::new();
    for l in lines {
        anyhow::ensure!(
            l["failed"] != Value::Bool(true),
            "{}: the run failed",
            side_name(l)
        );
        sides.push((side_name(l), samples_of(l)?, l));
    }
    let longest = sides.iter().map(|s| s.1.len()).max().unwrap_or(0);
    let base = sides.iter().max_by_key(|s| s.1.len()).map(|s| &s.1);
    let mut out = String::from("| time (s) | seed time (h:mm) |");
    let mut rule = String::from("| ---: | ---: |");
    for (name, _, _) in &sides {
        out += &format!(" {name}: revision | compacted | RSS per member (MiB) | in use (MiB) |");
        rule += " ---: | ---: | ---: | ---: |";
    }
    out += "\n";
    out += &rule;
    out += "\n";
    for i in rows(longest) {
        let at = base.and_then(|b| b.get(i));
        let t = at.map_or(String::new(), |s| format!("{:.0}", s.t));
        let sim = at.map_or(String::new(), |s| clock(s.sim_s));
        out += &format!("| {t} | {sim} |");
        for (_, samples, _) in &sides {
            out += &cells(samples.get(i));
            out += "|";
        }
        out += "\n";
    }
    out += "\n";
    for (name, samples, l) in &sides {
        let v = verdict(samples);
        let num = |k: &str| l[k].as_u64().unwrap_or(0);
        out += &format!(
            "- **{name}**: {}. Churn: {} registrations ({} failed), {} renewals ({} lost, {} failed), {} revokes ({} failed), {} selector reads, {} plain puts ({} failed, {} skipped as behind); {} s real for {} s of seed time; load average {}.\n",
            v.text,
            num("registrations"), num("register_errors"),
            num("renewals"), num("renew_lost"), num("renew_errors"),
            num("revokes"), num("revoke_errors"), num("reads"),
            num("puts"), num("put_errors"), num("puts_behind"),
            l["real_s"], num("sim_secs"),
            l["load"].as_str().unwrap_or("?"),
        );
    }
    Ok(out)
}

/// `bench soak-report`: reads the lines, prints the Markdown.
pub fn run(a: &ReportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.input)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.input.display()))?;
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    print!("{}", render(&lines)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: f64, compact: i64, rss: f64) -> Sample {
        Sample {
            t,
            sim_s: t * 20.0,
            revision: (t * 100.0) as i64,
            compact_revision: compact,
            rss_mib: vec![Some(rss), Some(rss), Some(rss)],
            db_mib: None,
            db_in_use_mib: Some(1.0),
        }
    }

    #[test]
    fn flat_only_with_compaction_early_and_little_growth() {
        let flat: Vec<Sample> = (0..9)
            .map(|i| {
                s(
                    i as f64 * 10.0,
                    if i > 1 { 50 } else { 0 },
                    50.0 + i as f64 * 0.1,
                )
            })
            .collect();
        assert!(verdict(&flat).flat, "{:?}", verdict(&flat));
        let growing: Vec<Sample> = (0..9)
            .map(|i| {
                s(
                    i as f64 * 10.0,
                    if i > 1 { 50 } else { 0 },
                    50.0 + i as f64 * 10.0,
                )
            })
            .collect();
        let v = verdict(&growing);
        assert!(!v.flat && v.text.contains("NOT flat"), "{v:?}");
        let late: Vec<Sample> = (0..9)
            .map(|i| s(i as f64 * 10.0, if i > 7 { 50 } else { 0 }, 50.0))
            .collect();
        assert!(!verdict(&late).flat);
        assert!(!verdict(&flat[..4]).flat, "too few samples");
    }

    #[test]
    fn table_has_a_row_per_kept_sample_and_a_verdict_per_side() {
        let samples: Vec<Sample> = (0..40).map(|i| s(i as f64, 5, 50.0)).collect();
        let line = |side: &str| serde_json::json!({"side": side, "samples": samples, "sim_secs": 800, "real_s": 40.0, "load": "1.0 1.0 1.0"});
        let md = render(&[line("ours"), line("etcd")]).expect("renders");
        let table_rows = md.lines().filter(|l| l.starts_with("| ")).count();
        assert_eq!(table_rows, 2 + rows(40).len(), "header, rule, rows: {md}");
        assert!(rows(40).len() <= MAX_ROWS && rows(40).last() == Some(&39));
        assert!(
            md.contains("**ours**: memory flat once compaction runs"),
            "{md}"
        );
        assert!(md.contains("**etcd**: memory flat"), "{md}");
        assert!(render(&[serde_json::json!({"failed": true, "side": "ours"})]).is_err());
    }
}
