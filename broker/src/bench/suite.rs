//! The standard scenarios (1 KiB, 1 producer + 1 consumer, loopback,
//! unless said), each run several times on a fresh broker; the table
//! reports medians, and targets are checked against them.

use super::{BenchConfig, Mode, Report, SpawnedBroker, run};

pub struct Scenario {
    pub name: &'static str,
    pub config: BenchConfig,
    /// Scrape the spawned broker's /metrics every second during the run.
    pub scraped: bool,
    /// (what, minimum end-to-end msgs/s, maximum p99 publish→confirm ms)
    pub target: Option<(f64, Option<f64>)>,
}

fn scenario(name: &'static str, count: u64, change: impl FnOnce(&mut BenchConfig)) -> Scenario {
    let mut config = BenchConfig {
        count,
        persistent: true,
        ..BenchConfig::default()
    };
    change(&mut config);
    Scenario {
        name,
        config,
        scraped: false,
        target: None,
    }
}

/// The standard scenarios; `scale` multiplies message counts.
pub fn scenarios(scale: f64) -> Vec<Scenario> {
    let n = |count: u64| ((count as f64 * scale) as u64).max(1000);
    let mut list = vec![
        scenario("rapid, batch 1", n(200_000), |_| {}),
        scenario("rapid, batch 10", n(300_000), |c| {
            c.mode = Mode::Batch;
            c.batch = 10;
        }),
        scenario("rapid, batch 100", n(500_000), |c| {
            c.mode = Mode::Batch;
            c.batch = 100;
        }),
        scenario("rapid, batch 1000", n(500_000), |c| {
            c.mode = Mode::Batch;
            c.batch = 1000;
        }),
        scenario("confirm ≤1000 in flight, async flush", n(300_000), |c| {
            c.mode = Mode::Confirm
        }),
        scenario("confirm ≤1000 in flight, sync flush", n(200_000), |c| {
            c.mode = Mode::Confirm;
            c.flush = "sync".into();
        }),
        scenario("batch 100 via direct (wasm)", n(500_000), |c| {
            c.mode = Mode::Batch;
            c.batch = 100;
            c.exchange_type = "direct".into();
        }),
        scenario("fanout to 10 queues, batch 100", n(100_000), |c| {
            c.mode = Mode::Batch;
            c.batch = 100;
            c.exchange_type = "fanout".into();
            c.queues = 10;
            c.consumers = 10;
        }),
        scenario("topic, 1000 bindings, batch 100", n(300_000), |c| {
            c.mode = Mode::Batch;
            c.batch = 100;
            c.exchange_type = "topic".into();
            c.extra_bindings = 1000;
        }),
        scenario(
            "16 producers / 16 consumers / 16 queues, batch 10",
            n(300_000),
            |c| {
                c.mode = Mode::Batch;
                c.batch = 10;
                c.producers = 16;
                c.consumers = 16;
                c.queues = 16;
            },
        ),
        scenario("64 B, batch 100", n(500_000), |c| {
            c.mode = Mode::Batch;
            c.batch = 100;
            c.size = 64;
        }),
        scenario("16 KiB, batch 10", n(60_000), |c| {
            c.mode = Mode::Batch;
            c.batch = 10;
            c.size = 16 << 10;
        }),
    ];
    list.extend([
        scenario("delayed 1 ms (x-delay), batch 100", n(300_000), |c| {
            c.mode = Mode::Batch;
            c.batch = 100;
            c.delay_ms = 1;
        }),
        scenario(
            "dead-lettered (TTL 0, built-in policy), batch 100",
            n(200_000),
            |c| {
                c.mode = Mode::Batch;
                c.batch = 100;
                c.dead_letter = Some("builtin".into());
            },
        ),
    ]);
    list.extend([
        scenario("stream, 1 group member, batch 100", n(300_000), |c| {
            c.mode = Mode::Batch;
            c.batch = 100;
            c.stream = true;
        }),
        scenario("stream, 3 group members, batch 100", n(300_000), |c| {
            c.mode = Mode::Batch;
            c.batch = 100;
            c.stream = true;
            c.consumers = 3;
        }),
        scenario("stream replay from first, batch 1000", n(1_000_000), |c| {
            c.mode = Mode::Batch;
            c.batch = 1000;
            c.stream = true;
            c.replay = true;
        }),
    ]);
    for (name, producers, flush) in [
        (
            "transactional half + commit, 1 producer, async flush",
            1,
            "async",
        ),
        (
            "transactional half + commit, 16 producers, async flush",
            16,
            "async",
        ),
        (
            "transactional half + commit, 1 producer, sync flush",
            1,
            "sync",
        ),
        (
            "transactional half + commit, 16 producers, sync flush",
            16,
            "sync",
        ),
    ] {
        list.push(scenario(name, n(20_000), |c| {
            c.mode = Mode::Transactional;
            c.producers = producers;
            c.flush = flush.into();
        }));
    }
    // What metrics cost: the same as "rapid, batch 100" and "confirm ≤1000
    // in flight, async flush", with /metrics scraped every second.
    let mut scraped_batch = scenario(
        "rapid, batch 100, /metrics scraped every 1 s",
        n(500_000),
        |c| {
            c.mode = Mode::Batch;
            c.batch = 100;
        },
    );
    scraped_batch.scraped = true;
    let mut scraped_confirm = scenario(
        "confirm ≤1000 in flight, async flush, /metrics scraped every 1 s",
        n(300_000),
        |c| c.mode = Mode::Confirm,
    );
    scraped_confirm.scraped = true;
    list.extend([scraped_batch, scraped_confirm]);
    // Issue 19's targets (end to end; fan-out counts every delivery; 16 KiB
    // at 1 GB/s is 61k msgs/s).
    list[2].target = Some((400_000.0, None));
    list[4].target = Some((250_000.0, None));
    list[5].target = Some((150_000.0, Some(20.0)));
    list[7].target = Some((1_000_000.0, None));
    list[10].target = Some((1_000_000.0, None));
    list[11].target = Some((61_035.0, None));
    list[13].target = Some((50_000.0, None));
    list
}

/// The median of each figure over the runs of one scenario.
pub struct Summary {
    pub name: &'static str,
    pub runs: Vec<Report>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

impl Summary {
    pub fn median_of(&self, f: impl Fn(&Report) -> Option<f64>) -> Option<f64> {
        let values: Vec<f64> = self.runs.iter().filter_map(f).collect();
        (!values.is_empty()).then(|| median(values))
    }
}

/// Runs every scenario `runs` times, interleaved, each on a freshly
/// spawned broker.
pub async fn run_suite(
    scale: f64,
    runs: usize,
    filter: Option<&str>,
) -> Result<Vec<(Scenario, Summary)>, String> {
    let mut results: Vec<(Scenario, Summary)> = scenarios(scale)
        .into_iter()
        // Alternatives separated by `|`.
        .filter(|s| filter.is_none_or(|f| f.split('|').any(|f| s.name.contains(f))))
        .map(|scenario| {
            let summary = Summary {
                name: scenario.name,
                runs: Vec::new(),
            };
            (scenario, summary)
        })
        .collect();
    // Interleaved: run i of every scenario before run i + 1 of any, so that
    // the machine's slow moments fall on all of them alike.
    for i in 0..runs {
        for (scenario, summary) in &mut results {
            let broker = SpawnedBroker::start()?;
            let mut config = scenario.config.clone();
            if scenario.scraped {
                config.scrape_metrics = broker.http;
            }
            let report = run(&broker.url, &broker.trust, &config).await?;
            eprintln!(
                "{} (run {}/{runs}): {:.0} msgs/s end to end",
                scenario.name,
                i + 1,
                report.end_to_end_msgs_per_s
            );
            summary.runs.push(report);
        }
    }
    Ok(results)
}

fn ms(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{v:.1}"))
}

/// The Markdown table of a suite run.
pub fn table(results: &[(Scenario, Summary)]) -> String {
    let mut out = String::from(
        "| scenario | producer msgs/s | consumer msgs/s | end-to-end msgs/s | MB/s | confirm p50 / p99 ms | deliver p50 / p99 / p99.9 ms | target |\n\
         |---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for (scenario, s) in results {
        let e2e = s
            .median_of(|r| Some(r.end_to_end_msgs_per_s))
            .unwrap_or(0.0);
        let confirm_p99 = s.median_of(|r| r.publish_to_confirm.map(|p| p.p99_ms));
        let target = match scenario.target {
            None => String::new(),
            Some((min, max_p99)) => {
                let rate_ok = e2e >= min;
                let p99_ok = max_p99.is_none_or(|max| confirm_p99.is_some_and(|p| p <= max));
                let what = match max_p99 {
                    Some(max) => format!("≥ {:.0}k msgs/s, p99 ≤ {max:.0} ms", min / 1000.0),
                    None => format!("≥ {:.0}k msgs/s", min / 1000.0),
                };
                format!(
                    "{what}: {}",
                    if rate_ok && p99_ok {
                        "**met**"
                    } else {
                        "**missed**"
                    }
                )
            }
        };
        out.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.1} | {} / {} | {} / {} / {} | {} |\n",
            scenario.name,
            s.median_of(|r| Some(r.producer_msgs_per_s)).unwrap_or(0.0),
            s.median_of(|r| Some(r.consumer_msgs_per_s)).unwrap_or(0.0),
            e2e,
            s.median_of(|r| Some(r.mb_per_s)).unwrap_or(0.0),
            ms(s.median_of(|r| r.publish_to_confirm.map(|p| p.p50_ms))),
            ms(confirm_p99),
            ms(s.median_of(|r| r.publish_to_deliver.map(|p| p.p50_ms))),
            ms(s.median_of(|r| r.publish_to_deliver.map(|p| p.p99_ms))),
            ms(s.median_of(|r| r.publish_to_deliver.map(|p| p.p999_ms))),
            target
        ));
    }
    // Ratios between scenarios of the same suite run.
    let find = |name: &str| results.iter().find(|(s, _)| s.name == name).map(|(_, r)| r);
    let e2e = |s: &Summary| {
        s.median_of(|r| Some(r.end_to_end_msgs_per_s))
            .unwrap_or(0.0)
    };
    let comparisons = [
        (
            "batch 100 via direct (wasm)",
            "rapid, batch 100",
            "wasm routing (direct plugin) vs native (default exchange), batch 100",
            0.9,
        ),
        (
            "rapid, batch 100, /metrics scraped every 1 s",
            "rapid, batch 100",
            "metrics scraped every second vs not, batch 100",
            0.97,
        ),
        (
            "confirm ≤1000 in flight, async flush, /metrics scraped every 1 s",
            "confirm ≤1000 in flight, async flush",
            "metrics scraped every second vs not, confirm",
            0.97,
        ),
    ];
    for (measured, baseline, what, target) in comparisons {
        if let (Some(measured), Some(baseline)) = (find(measured), find(baseline))
            && e2e(baseline) > 0.0
        {
            let ratio = e2e(measured) / e2e(baseline);
            out.push_str(&format!(
                "\n{what}: **{ratio:.2}×** (target ≥ {target}×: {})\n",
                if ratio >= target { "met" } else { "missed" }
            ));
        }
    }
    out
}
