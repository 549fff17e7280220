//! The filter table: the idempotency filter's window, fingerprint and
//! require-id behaviour, as sequences of publishes and expected verdicts.

use bytes::Bytes;

use super::super::PluginError;
use super::super::bindings::{Message, Properties, Verdict};
use super::super::policies::MessageFilter;
use super::exchange::message;
use super::{Cases, Subject};

/// Expected verdict kinds (reasons are free text).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Seen {
    Accept,
    Duplicate,
    Reject,
}

struct FilterCase {
    name: &'static str,
    config: &'static [(&'static str, &'static str)],
    /// (message id, body, expected verdict), in publish order.
    steps: Vec<(Option<&'static str>, &'static [u8], Seen)>,
}

fn table() -> Vec<FilterCase> {
    use Seen::*;
    vec![
        FilterCase {
            name: "same message-id twice is a duplicate",
            config: &[],
            steps: vec![
                (Some("a"), b"x", Accept),
                (Some("a"), b"x", Duplicate),
                (Some("b"), b"x", Accept),
            ],
        },
        FilterCase {
            name: "without an id, messages pass",
            config: &[],
            steps: vec![(None, b"x", Accept), (None, b"x", Accept)],
        },
        FilterCase {
            name: "fingerprint: same id, other body is new",
            config: &[("fingerprint", "true")],
            steps: vec![
                (Some("a"), b"x", Accept),
                (Some("a"), b"y", Accept),
                (Some("a"), b"x", Duplicate),
            ],
        },
        FilterCase {
            name: "fingerprint: no id, same body is a duplicate",
            config: &[("fingerprint", "true")],
            steps: vec![(None, b"z", Accept), (None, b"z", Duplicate)],
        },
        FilterCase {
            name: "require-id rejects messages without one",
            config: &[("require-id", "true")],
            steps: vec![(None, b"x", Reject), (Some("a"), b"x", Accept)],
        },
    ]
}

fn with_id(id: Option<&str>, body: &[u8]) -> Message {
    Message {
        body_size: body.len() as u64,
        properties: Properties {
            message_id: id.map(String::from),
            ..Properties::default()
        },
        ..message("k")
    }
}

fn seen(verdict: &Verdict) -> Seen {
    match verdict {
        Verdict::Accept => Seen::Accept,
        Verdict::Duplicate => Seen::Duplicate,
        Verdict::Reject(_) => Seen::Reject,
    }
}

pub(crate) fn run(subject: &Subject<'_>, cases: &mut Cases) -> Result<bool, PluginError> {
    let known = subject.claims("idempotency");
    for (n, case) in table().into_iter().enumerate() {
        // A name per case: each gets its own key/value store.
        let label = format!("filter-{n}");
        let filter = MessageFilter::new(subject.variant(&label, case.config)?)?;
        let mut outcome = Ok(());
        for (step, (id, body, expected)) in case.steps.iter().enumerate() {
            match filter.check(&with_id(*id, body), &Bytes::from_static(body)) {
                Ok(verdict) if !known || seen(&verdict) == *expected => {}
                Ok(verdict) => {
                    outcome = Err(format!(
                        "step {step}: expected {expected:?}, got {verdict:?}"
                    ));
                    break;
                }
                Err(error) => {
                    outcome = Err(format!("step {step}: {error}"));
                    break;
                }
            }
        }
        cases.check(case.name, outcome);
        subject.drop_variant(&label)?;
    }
    // The batch call must agree with single calls.
    let filter = MessageFilter::new(subject.variant("filter-batch", &[])?)?;
    let batch = [
        with_id(Some("p"), b""),
        with_id(Some("p"), b""),
        with_id(Some("q"), b""),
    ];
    let outcome = filter
        .check_batch(&batch, &[])
        .map_err(|e| e.to_string())
        .and_then(|verdicts| {
            let got: Vec<Seen> = verdicts.iter().map(seen).collect();
            let want = [Seen::Accept, Seen::Duplicate, Seen::Accept];
            if !known || got == want {
                Ok(())
            } else {
                Err(format!("batch verdicts {got:?}, expected {want:?}"))
            }
        });
    cases.check("a batch sees duplicates inside itself", outcome);
    subject.drop_variant("filter-batch")?;
    Ok(known)
}
