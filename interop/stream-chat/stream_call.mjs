// Drives callgate's Stream-compatible calling endpoints with Stream's own
// SDK, as an app built on Stream's retired calling API would:
//   node stream_call.mjs <gateway base URL> <user token secret> <channel id>
// The user token is minted by the SDK's server client (createToken), which
// is how a Stream app backend makes them; callgate accepts the same token.
// Prints one JSON object with every response, for the Go test to check.
import { StreamChat } from 'stream-chat';

const [baseURL, secret, channelID] = process.argv.slice(2);
const server = new StreamChat('callgate', secret);
const token = server.createToken('ada', Math.floor(Date.now() / 1000) + 3600);

const client = new StreamChat('callgate', { baseURL });
// Set the user without opening Stream's WebSocket: the calls are plain REST.
client._setToken({ id: 'ada' }, token);
client._setUser({ id: 'ada' });

const channel = client.channel('messaging', channelID);
const out = {};
out.created = await channel.createCall({ id: 'Interop-1', type: 'video' });
out.again = await channel.createCall({ id: 'interop-1', type: 'audio' });
out.token = await client.getCallToken('interop-1');
try {
  await channel.createCall({ id: 'bad id!', type: 'video' });
  out.badID = 'accepted';
} catch (err) {
  out.badID = { status: err.response?.status, body: err.response?.data };
}
console.log(JSON.stringify(out));
