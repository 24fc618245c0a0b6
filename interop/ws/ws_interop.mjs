// Drives callgate's WebSocket API with Node's `ws` client, as a web app
// would. Usage: node ws_interop.mjs <base ws url> <ada token> <bob token>
// Prints one JSON object summarising what it saw.
import WebSocket from "ws";

const [base, adaToken, bobToken] = process.argv.slice(2);

function open(token, extra = "") {
  return new Promise((resolve, reject) => {
    const sock = new WebSocket(`${base}/v1/ws?token=${encodeURIComponent(token)}${extra}`);
    const frames = [];
    const waiters = [];
    let n = 0;
    sock.on("message", (raw) => {
      const f = JSON.parse(raw.toString());
      const i = waiters.findIndex((w) => w.pred(f));
      if (i >= 0) waiters.splice(i, 1)[0].resolve(f);
      else frames.push(f);
    });
    sock.on("error", reject);
    const api = {
      sock,
      wait(pred, what) {
        const i = frames.findIndex(pred);
        if (i >= 0) return Promise.resolve(frames.splice(i, 1)[0]);
        return new Promise((res, rej) => {
          const t = setTimeout(() => rej(new Error("timeout waiting for " + what)), 5000);
          waiters.push({ pred, resolve: (f) => { clearTimeout(t); res(f); } });
        });
      },
      request(name, data) {
        const id = `js-${++n}`;
        sock.send(JSON.stringify({ name, data, event: { id, date: Date.now() } }));
        return api.wait((f) => f.event && f.event.id === id, name);
      },
    };
    api.wait((f) => f.name === "session", "session").then(() => resolve(api), reject);
  });
}

const out = {};
const ada = await open(adaToken, "&name=Ada");
const bob = await open(bobToken, "&name=Bob");

out.unknown = (await ada.request("videochat:requestDirectVideochat", { targetUser: "nobody" })).error;
const req = await ada.request("videochat:requestDirectVideochat", { targetUser: "bob" });
out.request = req;
const rung = await bob.wait((f) => f.name === "videochat:videochatRequested", "ring");
out.rung = rung.data;
const ringing = await bob.wait((f) => f.name === "call" && f.data.state === "ringing", "call ringing");
out.ringingEventId = ringing.event.id;
const acc = await bob.request("videochat:acceptVideochatRequest", { videochatRequestId: req.data.videochatRequestId });
out.accept = acc;
out.callerAccepted = (await ada.wait((f) => f.name === "videochat:directVideochatRequestAccepted", "caller credential")).data;
out.accepted = (await bob.wait((f) => f.name === "videochat:videochatAccepted", "accepted")).data;

// Malformed frame: answered, socket stays open.
bob.sock.send("{not json");
out.malformed = (await bob.wait((f) => f.name === "error", "error frame")).error;

// Resume: a second bob socket from the ringing event id gets the accept again.
const again = await open(bobToken, `&last_event_id=${out.ringingEventId}`);
out.resumed = (await again.wait((f) => f.name === "videochat:videochatAccepted", "resumed accept")).data;

for (const s of [ada, bob, again]) s.sock.close(1000);
console.log(JSON.stringify(out));
