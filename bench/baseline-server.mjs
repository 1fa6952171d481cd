import { createServer } from 'node:http';

/*
 * The yardstick: bare node:http answering every request with the same small
 * JSON body, with the same keep-alive settings as Padlock's server. Every
 * Padlock figure is reported as a ratio to this server measured in the same
 * run, so a busy or slow machine moves both sides alike.
 * Prints "listening <port>" on stdout once bound to an ephemeral port.
 */

const BODY = Buffer.from(JSON.stringify({ status: 'ok', service: 'baseline' }));

const server = createServer({ keepAliveTimeout: 5000, headersTimeout: 10000, requestTimeout: 30000 }, (req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': BODY.length });
  res.end(BODY);
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

process.once('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
