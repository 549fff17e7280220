#!/usr/bin/env python3
"""RabbitMQ's side of the side-by-side benchmark (docs/BENCHMARKS.md,
"Side by side"): the same workload as `switchyard bench --mode confirm
--persistent` — 1 producer publishing persistent 1 KiB messages to a durable
queue with publisher confirms, at most 1,000 unconfirmed, and 1 consumer
(prefetch 1,000, acknowledging every 500 with `multiple`) — through a real
AMQP 0-9-1 client (pika, from PyPI). Prints the end-to-end rate (messages
consumed per second from the first publish to the last delivery) and the
confirm latency p50 / p99.

    pip install pika
    python3 scripts/peer-rabbitmq.py [messages] [amqp url]
"""

import multiprocessing
import sys
import time

import pika

QUEUE = "peer-bench"
IN_FLIGHT = 1000
PREFETCH = 1000
BODY = b"x" * 1024


def consume(url, count, finished):
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=PREFETCH)
    received = 0
    for method, _properties, _body in channel.consume(QUEUE):
        received += 1
        if received % (PREFETCH // 2) == 0 or received == count:
            channel.basic_ack(method.delivery_tag, multiple=True)
        if received == count:
            break
    finished.value = time.time()
    channel.cancel()
    connection.close()


class Publisher:
    """Publishes `count` messages, keeping at most IN_FLIGHT unconfirmed."""

    def __init__(self, url, count):
        self.count = count
        self.sent = 0
        self.confirmed = 0
        self.sent_at = {}
        self.latencies = []
        self.connection = pika.SelectConnection(
            pika.URLParameters(url),
            on_open_callback=self.on_open,
            on_close_callback=lambda connection, _reason: connection.ioloop.stop(),
        )

    def on_open(self, connection):
        connection.channel(on_open_callback=self.on_channel)

    def on_channel(self, channel):
        self.channel = channel
        channel.confirm_delivery(self.on_confirm)
        self.publish()

    def publish(self):
        properties = pika.BasicProperties(delivery_mode=2)
        while self.sent < self.count and self.sent - self.confirmed < IN_FLIGHT:
            self.sent += 1
            self.sent_at[self.sent] = time.time()
            self.channel.basic_publish("", QUEUE, BODY, properties)

    def on_confirm(self, frame):
        tag = frame.method.delivery_tag
        upto = range(self.confirmed + 1, tag + 1) if frame.method.multiple else [tag]
        now = time.time()
        for seq in upto:
            sent = self.sent_at.pop(seq, None)
            if sent is not None:
                self.latencies.append(now - sent)
        self.confirmed = max(self.confirmed, tag)
        if self.confirmed >= self.count:
            self.connection.close()
        else:
            self.publish()


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    url = sys.argv[2] if len(sys.argv) > 2 else "amqp://guest:guest@127.0.0.1:5672/%2F"
    setup = pika.BlockingConnection(pika.URLParameters(url))
    channel = setup.channel()
    channel.queue_delete(QUEUE)
    channel.queue_declare(QUEUE, durable=True)
    setup.close()

    finished = multiprocessing.Value("d", 0.0)
    consumer = multiprocessing.Process(target=consume, args=(url, count, finished))
    consumer.start()
    time.sleep(1)  # the consumer is attached before the first publish
    started = time.time()
    publisher = Publisher(url, count)
    publisher.connection.ioloop.start()
    consumer.join()
    latencies = sorted(publisher.latencies)
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    elapsed = finished.value - started
    print(
        f"end to end: {count / elapsed:.0f} msgs/s ({count} messages in {elapsed:.2f} s); "
        f"confirm p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )


if __name__ == "__main__":
    main()
