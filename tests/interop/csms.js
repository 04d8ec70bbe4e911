'use strict';
// An ocpp-rpc RPCServer in strict mode playing the CSMS against the harness's charging
// station. Listens on 127.0.0.1 on a free port and reports it:
//   node csms.js '{"protocol":"ocpp1.6"}'   ->   {"event":"ready","port":N}
// Stations connect to ws://127.0.0.1:N/<any path>/<identity>. See bridge.js for the protocol.

const {RPCServer} = require('ocpp-rpc');
const {Bridge, emit, parseConfig} = require('./bridge');

async function main() {
    const cfg = parseConfig();
    const bridge = new Bridge(cfg);
    const server = new RPCServer({
        protocols: [cfg.protocol],
        strictMode: true,
        callTimeoutMs: cfg.callTimeoutMs,
    });
    const clients = new Map();   // identity -> RPCServerClient
    let latest = null;
    server.on('client', client => {
        clients.set(client.identity, client);
        latest = client;
        bridge.attach(client, client.identity);
        client.on('close', ev => {
            if (clients.get(client.identity) === client) clients.delete(client.identity);
            emit({event: 'client_closed', identity: client.identity, code: ev.code, reason: String(ev.reason || '')});
        });
        emit({event: 'client', identity: client.identity, protocol: client.protocol});
    });
    let exiting = false;
    const shutdown = async (code) => {
        if (exiting) return;
        exiting = true;
        try {
            await Promise.race([server.close({code: 1001, reason: 'test done'}), new Promise(r => setTimeout(r, 2000))]);
        } catch (err) { /* ignore */ }
        process.exit(code);
    };
    const http = await server.listen(0, '127.0.0.1');
    emit({event: 'ready', port: http.address().port, protocol: cfg.protocol});
    bridge.run(cmd => (cmd.identity ? clients.get(cmd.identity) : latest), shutdown);
}

main().catch(err => {
    emit({event: 'fatal', message: err.stack || String(err)});
    process.exit(1);
});
