//! Every way a message dies, through the binary with the built-in policy
//! (a queue's dead-letter-exchange): rejected, expired (queue TTL and the
//! message's own), maxlen (drop-head and reject-publish-dlx) and
//! delivery_limit each reach the dead-letter queue with their death
//! history, as its consumer sees it.

use crate::support;

use std::collections::HashMap;
use std::time::Duration;

use support::Broker;
use switchyard_client::{Channel, ExchangeOptions, Field, Message, QueueOptions, Value};

async fn declare(ch: &Channel, name: &str, arguments: &[(&str, &str)]) {
    let mut fields: Vec<Field> = arguments
        .iter()
        .map(|(k, v)| Field::new(*k, Value::Text((*v).into())))
        .collect();
    fields.push(Field::new(
        "dead-letter-exchange",
        Value::Text("dlx".into()),
    ));
    let options = QueueOptions {
        arguments: fields,
        ..QueueOptions::default()
    };
    ch.declare_queue(name, options).await.unwrap();
}

fn history(message: &Message) -> Vec<serde_json::Value> {
    match switchyard_protocol::find(&message.headers, "x-death") {
        Some(Value::Text(json)) => serde_json::from_str(json).unwrap(),
        other => panic!("no x-death header: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_death_reaches_the_dead_letter_queue_with_its_history() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    ch.declare_exchange("dlx", "fanout", ExchangeOptions::default())
        .await
        .unwrap();
    support::queue(&ch, "dead").await;
    ch.bind("dead", "dlx", "", vec![]).await.unwrap();
    declare(&ch, "q-reject", &[]).await;
    declare(&ch, "q-queue-ttl", &[("message-ttl", "1")]).await;
    declare(&ch, "q-own-ttl", &[]).await;
    declare(&ch, "q-drop-head", &[("max-length", "1")]).await;
    declare(
        &ch,
        "q-reject-dlx",
        &[("max-length", "1"), ("overflow", "reject-publish-dlx")],
    )
    .await;
    declare(&ch, "q-limit", &[("delivery-limit", "1")]).await;
    ch.confirm_select().await.unwrap();
    let publish = |queue: &'static str, body: &'static str| {
        let ch = ch.clone();
        async move {
            ch.publish("", Message::new(queue, body))
                .await
                .unwrap()
                .await
        }
    };
    publish("q-reject", "rejected").await.unwrap();
    publish("q-queue-ttl", "queue-ttl").await.unwrap();
    let mut own = Message::new("q-own-ttl", "own-ttl");
    own.properties.expiration = Some(1);
    ch.publish("", own).await.unwrap().await.unwrap();
    publish("q-drop-head", "dropped-head").await.unwrap();
    publish("q-drop-head", "kept").await.unwrap();
    publish("q-reject-dlx", "kept").await.unwrap();
    assert!(
        publish("q-reject-dlx", "refused").await.is_err(),
        "the publisher is told"
    );
    publish("q-limit", "limited").await.unwrap();

    let (rejected, _) = ch.get("q-reject", false).await.unwrap().unwrap();
    rejected.reject(false).await.unwrap();
    // delivery-limit 1 allows one redelivery (as RabbitMQ): the second
    // return kills it.
    for delivery in 1..=2 {
        let (limited, _) = ch.get("q-limit", false).await.unwrap().unwrap();
        assert_eq!(limited.redelivered, delivery > 1);
        limited.nack(true).await.unwrap();
    }

    let dead: std::sync::Mutex<HashMap<String, Message>> = Default::default();
    let got = support::eventually_async(Duration::from_secs(60), || async {
        while let Some((d, _)) = ch.get("dead", true).await.unwrap() {
            let body = String::from_utf8_lossy(&d.message.body).into_owned();
            dead.lock().unwrap().insert(body, d.message);
        }
        dead.lock().unwrap().len() >= 6
    })
    .await;
    let dead = dead.into_inner().unwrap();
    assert!(
        got,
        "dead letters so far: {:?}",
        dead.keys().collect::<Vec<_>>()
    );
    for (body, queue, reason) in [
        ("rejected", "q-reject", "rejected"),
        ("queue-ttl", "q-queue-ttl", "expired"),
        ("own-ttl", "q-own-ttl", "expired"),
        ("dropped-head", "q-drop-head", "maxlen"),
        ("refused", "q-reject-dlx", "maxlen"),
        ("limited", "q-limit", "delivery_limit"),
    ] {
        let message = &dead[body];
        let history = history(message);
        assert_eq!(history.len(), 1, "{body}: {history:?}");
        let death = &history[0];
        assert_eq!(
            (death["queue"].as_str(), death["reason"].as_str()),
            (Some(queue), Some(reason)),
            "{body}"
        );
        assert_eq!(death["count"], 1, "{body}");
        assert_eq!(death["exchange"], "", "{body}");
        assert_eq!(death["routing-keys"][0], queue, "{body}: {death}");
        assert!(death["time-first"].as_u64().unwrap() > 0, "{body}: {death}");
        let reason_header = switchyard_protocol::find(&message.headers, "x-death-reason");
        assert_eq!(reason_header, Some(&Value::Text(reason.into())), "{body}");
    }
    // Nothing else died: the kept messages are where they were.
    assert_eq!(support::drain(&ch, "q-drop-head").await.len(), 1);
    assert_eq!(support::drain(&ch, "q-reject-dlx").await.len(), 1);
}
