// Reads a JSON array of {body, signature, timestamp, public_key} on stdin
// and prints, for each, what discord-interactions' verifyKey says: the
// check Discord's own library does on an interactions endpoint.
import { verifyKey } from 'discord-interactions';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const cases = JSON.parse(input);
const out = [];
for (const c of cases) {
  out.push(await verifyKey(c.body, c.signature, c.timestamp, c.public_key));
}
process.stdout.write(JSON.stringify(out));
