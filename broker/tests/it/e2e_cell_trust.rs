//! What one cell may make another believe, end to end on a SET
//! deployment: a tenant's publish cannot carry the broker's own
//! `x-switchyard-…` forwarding headers (forged places made the receiving
//! cell drop later genuine messages as duplicates, and adopt the forged
//! places again after a SIGKILL), and a cell peer forwards only for the
//! cell its user is bound to.

use crate::support;

use std::collections::BTreeSet;

use support::cells::{PEER_PASSWORD, collect, deploy, keyed, order_bodies, orders, peer_user};
use support::{add_user, cells::users_of_set_b, drain, eventually_async};
use switchyard_client::{Field, Message, Value};

const FORWARDED_FROM: &str = "x-switchyard-forwarded-from";
const FORWARD_SEQ: &str = "x-switchyard-forward-seq";

fn text_header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message.headers.iter().find_map(|f| match &f.value {
        Value::Text(text) if f.name == name => Some(text.as_str()),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_forge_forwarding_places_that_drop_genuine_orders() {
    let mut deployment = deploy();
    let set_a = deployment.broker("set-a");
    add_user(set_a, "mallory", "mallory-pw", "/", ["", "orders", ""]);
    let (_guest, genuine) = set_a.channel().await;
    genuine.confirm_select().await.unwrap();

    // One genuine order shows the place set-a's stream to set-b is at.
    let users = users_of_set_b("u", 171);
    support::cells::publish_all(&genuine, orders(&users[..1])).await;
    let (_reader, reader) = deployment.broker("set-b").channel().await;
    let first = std::sync::Mutex::new(Vec::new());
    assert!(
        eventually_async(std::time::Duration::from_secs(120), || async {
            let drained = drain(&reader, "orders").await;
            let mut first = first.lock().unwrap();
            first.extend(drained);
            !first.is_empty()
        })
        .await
    );
    let first = first.into_inner().unwrap();
    let place = text_header(&first[0].message, FORWARD_SEQ)
        .unwrap()
        .to_string();
    let (epoch, seq) = place.rsplit_once('/').unwrap();
    let seq: u64 = seq.parse().unwrap();

    // Mallory's orders claim the next 50 places after her own.
    let mallory_url = set_a.url("mallory", "mallory-pw", "/");
    let mallory = set_a.connect_as(&mallory_url).await.unwrap();
    let forger = mallory.channel().await.unwrap();
    forger.confirm_select().await.unwrap();
    let forged: Vec<Message> = users[1..51]
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let mut message = keyed(Some(user), format!("order of {user}"));
            message.headers.extend([
                Field::new(FORWARDED_FROM, Value::Text("set-a".into())),
                Field::new(
                    FORWARD_SEQ,
                    Value::Text(format!("{epoch}/{}", seq + 51 + i as u64)),
                ),
                Field::new("X-Switchyard-Federation-Hops", Value::Int(99)),
            ]);
            message
        })
        .collect();
    support::cells::publish_all(&forger, forged).await;
    // 60 genuine orders take those places.
    support::cells::publish_all(&genuine, orders(&users[51..111])).await;
    assert_eq!(
        collect(deployment.broker("set-b"), 110).await,
        order_bodies(&users[1..111]),
        "every order arrives once, the forged ones as ordinary orders"
    );

    // After a SIGKILL set-b rebuilds its places from its log: still no
    // forged one, so later genuine orders arrive too.
    let dir = deployment.kill("set-b");
    deployment.restart("set-b", &dir);
    let (_guest, genuine) = deployment.broker("set-a").channel().await;
    genuine.confirm_select().await.unwrap();
    support::cells::publish_all(&genuine, orders(&users[111..171])).await;
    // (Acks of async queues may be lost with the SIGKILL: orders taken
    // before may come again; the later ones must all come.)
    let expected: BTreeSet<String> = order_bodies(&users[111..171]).into_iter().collect();
    let seen = std::sync::Mutex::new(BTreeSet::new());
    let (_reader, reader) = deployment.broker("set-b").channel().await;
    let all_came = eventually_async(std::time::Duration::from_secs(120), || async {
        let drained = drain(&reader, "orders").await;
        let mut seen = seen.lock().unwrap();
        seen.extend(
            drained
                .iter()
                .map(|d| String::from_utf8_lossy(&d.message.body).into_owned()),
        );
        expected.is_subset(&seen)
    })
    .await;
    let missing = expected.difference(&seen.lock().unwrap()).count();
    assert!(all_came, "{missing} genuine orders lost after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cell_peer_forwards_only_for_the_cell_it_is_bound_to() {
    let deployment = deploy();
    let set_b = deployment.broker("set-b");
    // set-a's broker logs in to set-b as peer-set-a.
    let url = set_b.url(&peer_user("set-a"), PEER_PASSWORD, "/");
    let connection = set_b.connect_as(&url).await.unwrap();
    let forwarded = |origin: &str, seq: u64| {
        let mut message = Message::new("orders", format!("from {origin}"));
        message.headers.extend([
            Field::new(FORWARDED_FROM, Value::Text(origin.into())),
            Field::new(FORWARD_SEQ, Value::Text(format!("forged/{seq}"))),
        ]);
        message
    };

    let channel = connection.channel().await.unwrap();
    channel.confirm_select().await.unwrap();
    let refused = match channel
        .publish_batch("orders", vec![forwarded("CENTER", 1)])
        .await
    {
        Ok(confirm) => confirm.await.unwrap_err(),
        Err(e) => e,
    };
    let refused = refused.to_string();
    assert!(
        refused.contains("speaks for cell 'set-a'") && refused.contains("'CENTER'"),
        "{refused}"
    );

    // Its own cell's messages are stored, once.
    let channel = connection.channel().await.unwrap();
    channel.confirm_select().await.unwrap();
    for _ in 0..2 {
        channel
            .publish_batch("orders", vec![forwarded("set-a", 1)])
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(collect(set_b, 1).await, vec!["from set-a".to_string()]);
}
