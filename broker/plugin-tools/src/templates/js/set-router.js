// {{name}}: a SET router. Messages with header x-region = eu are served by
// SET eu, us by SET us; messages without it are global (CENTER).

export function describe() {
  return {
    name: "{{name}}",
    version: "0.1.0",
    kind: "set-router",
    keyOnlyRouting: false,
    description: "SET by the x-region header",
  };
}

export const setRouter = {
  route(message, bodies, localSet) {
    const header = message.headers.find(
      (field) => field.name === "x-region" && field.value.tag === "text",
    );
    if (!header) return { tag: "center" };
    const region = header.value.val;
    if (region === localSet) return { tag: "local" };
    if (region === "eu" || region === "us") return { tag: "set", val: region };
    return { tag: "reject", val: `unknown region ${region}` };
  },
};
