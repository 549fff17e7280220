// {{name}}: a dead-letter policy. Rejected messages are retried after a
// second, up to three times; everything else goes to the exchange named by
// the queue's x-dead-letter-exchange argument, or is dropped.

export function describe() {
  return {
    name: "{{name}}",
    version: "0.1.0",
    kind: "dead-letter",
    keyOnlyRouting: false,
    description: "retry rejected messages three times, then dead-letter",
  };
}

export const deadLetter = {
  decide(message, bodies, queue, queueArguments, reason, history) {
    const deaths = history
      .filter((death) => death.queue === queue)
      .reduce((sum, death) => sum + death.count, 0);
    if (reason === "rejected" && deaths <= 3) {
      return { tag: "retry", val: { delayMs: 1000n } };
    }
    const dlx = queueArguments.find(
      (field) => field.name === "x-dead-letter-exchange" && field.value.tag === "text",
    );
    if (dlx) {
      return { tag: "republish", val: { exchange: dlx.value.val, routingKey: message.routingKey } };
    }
    return { tag: "drop" };
  },
};
